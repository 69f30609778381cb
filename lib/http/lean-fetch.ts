// The runtime's fetch, for every HTTP request shipkit makes itself. Node's fetch (undici) parses
// HTTP with llhttp compiled to WebAssembly, which V8 compiles again, optimized, in the background:
// about 29 MB and 50–75 ms that land as the process exits. Told first to keep WebAssembly in its
// baseline compiler, V8 skips that; a command's few requests do not need more (docs/internals.md).
import { setV8Flag } from '../core/v8-flags.ts';

let prepared = false;

/** Once, before the first request: WebAssembly stays in V8's baseline tier (where the runtime lets us say so). */
function prepare(): void {
  prepared = true;
  setV8Flag('--liftoff-only');
}

/** `fetch`, with the runtime prepared as above. */
export const leanFetch: typeof fetch = (input, init) => {
  if (!prepared) prepare();
  return fetch(input, init);
};
