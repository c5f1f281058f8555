// harness.mjs: the result recorder shared by the Node.js and browser runs of
// the wasm tests, and the C validator of the wasm module as a function.

export function recorder() {
  const results = [];
  const notes = [];
  const t = {
    results,
    notes,
    info(text) {
      notes.push(text);
    },
    ok(cond, name, detail) {
      results.push({ ok: !!cond, name, detail: cond ? undefined : detail === undefined ? undefined : String(detail) });
    },
    eq(actual, expected, name, detail) {
      const ok = Object.is(actual, expected);
      results.push({ ok, name, detail: ok ? undefined : `got ${String(actual)}, want ${String(expected)}${detail ? `\n${detail}` : ''}` });
    },
  };
  return t;
}

// cCheck(bytes, limits) -> null or the SL_ERR_DECODE_* name, by the C
// validator sl_msgpack_check() compiled into the module. `createCore` is the
// default export of starling-core.mjs, `wasm` its bytes or URL.
export async function cValidator(createCore, moduleArg) {
  const M = await createCore(moduleArg);
  return (bytes, lim) => {
    const p = M._malloc(bytes.length || 1);
    M.HEAPU8.set(bytes, p);
    const rc = M._sl__js_msgpack_check(p, bytes.length, (lim && lim.maxDepth) || 0, (lim && lim.maxElements) || 0, (lim && lim.maxSize) || 0);
    M._free(p);
    return rc === 0 ? null : M.UTF8ToString(M._sl__js_err_name(rc));
  };
}
