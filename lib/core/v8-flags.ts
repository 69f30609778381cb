// V8 flags a command sets for itself, at run time: the flags that V8 reads as it goes, not only
// when the heap is made, so they take effect without a `node --flag` on the command line (the
// one-file bundle is run as `node shipkit.mjs SCRIPT`, and as a bin through its shebang).

import { builtinModule } from './builtin.ts';

type V8Module = { setFlagsFromString(flags: string): void };

/**
 * Set on globalThis once a flag was set at run time. V8 stamps its compiled code with the flags in
 * force and refuses code stamped with others, so the one file's loader (tools/multicall-units.ts)
 * does not keep the units' compiled code when the process ends if this is set: the next start,
 * without the flag, would refuse it and compile again.
 */
export const V8_FLAGS_SET = Symbol.for('shipkit.v8-flags-set');

/** Sets one V8 flag; false where the runtime does not let us (then it runs as it is). */
export function setV8Flag(flag: string): boolean {
  // node:v8 loaded only here, not at every start of every command.
  try {
    const v8 = builtinModule<V8Module>('node:v8');
    if (!v8) return false;
    (globalThis as Record<symbol, unknown>)[V8_FLAGS_SET] = true;
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

/** V8's gc(): a full collection, or with { type: 'minor' } a scavenge of the young generation (Node 20 to 24). */
type Gc = (options?: { type: 'minor' }) => void;
/** Found on the first nudge: undefined until then, null where the runtime has none. */
let gc: Gc | null | undefined;
let nudgesAllowed = false;

function v8Gc(): Gc | null {
  if (gc !== undefined) return gc;
  gc = null;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return (gc = exposed as Gc);
  // --expose-gc gives gc() to the contexts made while it is set: one new context hands it over.
  if (!setV8Flag('--expose-gc')) return gc;
  try {
    const vm = builtinModule<{ runInNewContext(code: string): unknown }>('node:vm');
    const found = vm?.runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof found === 'function') gc = found as Gc;
  } catch {
    // No gc() to be had: the nudges do nothing.
  }
  setV8Flag('--no-expose-gc');
  return gc;
}

/**
 * Lets gcNudger's counters collect in this process. For a one-shot command that streams a
 * release through short-lived buffers (launchfit's update, deploy), not a long-running process.
 */
export function allowGcNudges(): void {
  nudgesAllowed = true;
}

/** Bytes streamed between two nudges. */
export const GC_NUDGE_BYTES = 2 * 2 ** 20;

/**
 * A counter for one stream of bytes (a download, an archive unpacked), told the size of each chunk
 * as it goes: once allowGcNudges was called, it has V8 collect the whole heap when the stream
 * starts (what the command made before it, such as manifests already read, is garbage by then,
 * and its space is used again instead of the heap growing for the stream) and scavenge its young
 * generation every `everyBytes`. The chunks a stream is done with hold their bytes outside V8's
 * heap, which V8 does not count towards a collection before 64 MB, and each brings only a few
 * hundred bytes of objects into the young generation, so left alone they are found every 10–20
 * MB of chunks; nudged, within a few MB (docs/internals.md). Otherwise, and where the runtime
 * has no gc() to give (Deno), it does nothing.
 */
export function gcNudger(everyBytes = GC_NUDGE_BYTES): (bytes: number) => void {
  /** Bytes since the last scavenge; undefined until the stream's first chunk. */
  let since: number | undefined;
  return (bytes) => {
    if (!nudgesAllowed) return;
    const full = since === undefined;
    since = (since ?? 0) + bytes;
    if (!full && since < everyBytes) return;
    since = 0;
    const collect = v8Gc();
    if (!collect) nudgesAllowed = false;
    else collect(full ? undefined : { type: 'minor' });
  };
}
