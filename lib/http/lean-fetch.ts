// The runtime's fetch, for every HTTP request shipkit makes itself. Node's fetch (undici) parses
// HTTP with llhttp compiled to WebAssembly, which V8 compiles again, optimized, in the background:
// about 29 MB and 50–75 ms that land as the process exits. Told first to keep WebAssembly in its
// baseline compiler, V8 skips that; a command's few requests do not need more (docs/internals.md).
let prepared = false;

type V8Module = { setFlagsFromString(flags: string): void };

/** Once, before the first request: WebAssembly stays in V8's baseline tier (where the runtime lets us say so). */
function prepare(): void {
  prepared = true;
  // getBuiltinModule (Node ≥ 20.16) loads node:v8 only here, not at every start of every command.
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  try {
    (getBuiltin?.('node:v8') as V8Module | undefined)?.setFlagsFromString('--liftoff-only');
  } catch {
    /* a runtime without V8's flags: its fetch as it is */
  }
}

/** `fetch`, with the runtime prepared as above. */
export const leanFetch: typeof fetch = (input, init) => {
  if (!prepared) prepare();
  return fetch(input, init);
};
