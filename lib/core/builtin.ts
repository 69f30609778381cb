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

type Require = (id: string) => unknown;
/** Where the runtime has no getBuiltinModule: node:module's require, once prepareBuiltins has loaded it. */
let olderRequire: Require | undefined;

/**
 * Makes requireBuiltin work where the runtime has no getBuiltinModule (Node 20.0–20.15, 22.0–22.2): loads
 * node:module's createRequire, which only an import can reach from an ES module. Where it has
 * one, does nothing. The one file's entry awaits it before it loads any unit.
 */
export async function prepareBuiltins(): Promise<void> {
  if (olderRequire || builtinModule('node:fs')) return;
  const { createRequire } = await import('node:module');
  olderRequire = createRequire('/');
}

/** The built-in module `id`: getBuiltinModule's, else node:module's require (after prepareBuiltins). */
export function requireBuiltin<T>(id: string): T {
  const found = builtinModule<T>(id);
  if (found) return found;
  if (!olderRequire) throw new Error(`the built-in ${id} was asked for before prepareBuiltins() was awaited`);
  return olderRequire(id) as T;
}
