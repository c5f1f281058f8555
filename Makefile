# Thin wrapper: install dependencies, configure with CMake, run the two commands.
#   make demo   - the demo: a planner on one node, a three-node cluster, then a live
#                 cluster with a page to open in a browser (DEMO_BROWSER_SECONDS)
#   make test   - every suite, then again under ASan+UBSan (both run the wasm tests too)
#   make wasm   - the browser build (Emscripten) into build-wasm/
#   make bench  - all benchmarks (make bench BENCH=local_pair for one)
BUILD      ?= build
BUILD_SAN  ?= build-san
BUILD_WASM ?= build-wasm
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure -j$(JOBS)
BENCH      ?=

.PHONY: all deps build build-san wasm demo test test-plain test-san bench install clean format

all: build

deps:
	@sh tools/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(BUILD_SAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DSL_ASAN=ON -DSL_UBSAN=ON -DSL_BUILD_BENCH=OFF

build-san: deps $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j$(JOBS)

# The wasm build is its own CMake project (wasm/CMakeLists.txt, Emscripten
# toolchain). Debian's emcc needs node-acorn from /usr/share/nodejs.
$(BUILD_WASM)/CMakeCache.txt:
	NODE_PATH=/usr/share/nodejs emcmake cmake -S wasm -B $(BUILD_WASM) -DCMAKE_BUILD_TYPE=Release

wasm: deps $(BUILD_WASM)/CMakeCache.txt
	NODE_PATH=/usr/share/nodejs cmake --build $(BUILD_WASM) -j$(JOBS)

# The wasm tests (tests/wasm_test.sh, tests/browser_wasm_test.sh) find the
# module through SL_WASM_DIR; SL_WASM_REQUIRED makes a missing one a failure.
WASM_ENV = SL_WASM_DIR=$(abspath $(BUILD_WASM)) SL_WASM_REQUIRED=1

demo: build wasm
	@SL_WASM_DIR=$(abspath $(BUILD_WASM)) sh examples/demo.sh $(BUILD)

test-plain: build wasm
	$(WASM_ENV) ctest --test-dir $(BUILD) $(CTEST_ARGS)

test-san: build-san wasm
	$(WASM_ENV) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_SAN) $(CTEST_ARGS)

test: test-plain test-san

# bench/browser_bench.sh also needs the wasm build (it skips without it).
bench: build wasm
	@$(WASM_ENV) sh bench/run.sh $(BUILD) $(BENCH)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i include/starling/*.h actors/*.[ch] schemas/*.[ch] runtime/*.[ch] wasm/*.[ch] tests/*.c bench/*.c examples/*.c tools/*.c

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_WASM)
