# Thin wrapper: install dependencies, configure with CMake, run the two commands.
#   make demo   - the demo: a planner on one node, then a three-node cluster
#   make test   - every suite, then again under ASan+UBSan
#   make bench  - all benchmarks (make bench BENCH=local_pair for one)
BUILD      ?= build
BUILD_SAN  ?= build-san
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure -j$(JOBS)
BENCH      ?=

.PHONY: all deps build build-san demo test test-plain test-san bench install clean format

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

demo: build
	@sh examples/demo.sh $(BUILD)

test-plain: build
	ctest --test-dir $(BUILD) $(CTEST_ARGS)

test-san: build-san
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_SAN) $(CTEST_ARGS)

test: test-plain test-san

bench: build
	@sh bench/run.sh $(BUILD) $(BENCH)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i include/starling/*.h actors/*.[ch] schemas/*.[ch] runtime/*.[ch] tests/*.c bench/*.c examples/*.c tools/*.c

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
