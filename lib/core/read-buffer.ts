// Fixed buffers for reading files in steps (hashing, copying a range): a few are reused instead of
// one allocated per file or per chunk, so reading a 200 MB release leaves no trail of dead buffers
// for the garbage collector to find late (docs/internals.md).

/** Bytes read at a time: a file up to this size is read in one step. */
export const READ_STEP = 256 * 1024;
/** Buffers kept for reuse: one per read in flight, as many as the widest pool that reads files. */
const KEEP = 16;
const spare: Buffer[] = [];

/** Runs `use` with a buffer of READ_STEP bytes that no one else uses until it settles. */
export async function withReadBuffer<T>(use: (buffer: Buffer) => Promise<T>): Promise<T> {
  const buffer = spare.pop() ?? Buffer.allocUnsafeSlow(READ_STEP);
  try {
    return await use(buffer);
  } finally {
    if (spare.length < KEEP) spare.push(buffer);
  }
}
