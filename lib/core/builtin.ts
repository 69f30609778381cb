// Node's built-in modules as process.getBuiltinModule hands them over (Node ≥ 20.16 and 22.3,
// Deno): loaded when first asked for, with neither an ES import (whose namespace of node:fs loads
// all of Node's streams) nor node:module's createRequire (0.25 ms of a start: it loads part of the
// ES module loader).

/** The built-in module `id` (such as `node:fs`), or undefined where the runtime has no getBuiltinModule. */
export function builtinModule<T>(id: string): T | undefined {
  // Looked up on each call: a test takes the function away to stand for an older Node.
  const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  return get?.(id) as T | undefined;
}
