// V8 flags a command sets for itself, at run time: the flags that V8 reads as it goes, not only
// when the heap is made, so they take effect without a `node --flag` on the command line (the
// one-file bundle is run as `node shipkit.mjs SCRIPT`, and as a bin through its shebang).

type V8Module = { setFlagsFromString(flags: string): void };

/** Sets one V8 flag; false where the runtime does not let us (then it runs as it is). */
export function setV8Flag(flag: string): boolean {
  // getBuiltinModule (Node ≥ 20.16) loads node:v8 only here, not at every start of every command.
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  try {
    const v8 = getBuiltin?.('node:v8') as V8Module | undefined;
    if (!v8) return false;
    v8.setFlagsFromString(flag);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops V8's young generation growing from the size it has (1–2 MB when a command starts) to
 * 16 MB per semi-space: a command that streams a release through many short-lived buffers then
 * collects them, and the memory they hold outside the heap, every MB or two instead of every 16
 * to 48, for a few more quick scavenges (docs/internals.md). Set before the command's work.
 */
export function keepYoungGenerationSmall(): boolean {
  return setV8Flag('--semi-space-growth-factor=1');
}

/**
 * Leaves out V8's optimizing compiler (`--no-opt`; its baseline compilers stay): a one-shot
 * command spends its time in native code (hashing, zlib, file I/O), and TurboFan's compile zones
 * and the code pages it touches in the node binary cost a delta update about 7 MB of its peak for
 * 10–15 % less CPU (docs/internals.md). Not for a long-running process.
 */
export function skipOptimizingCompiler(): boolean {
  return setV8Flag('--no-opt');
}
