// Reading /proc's small files (stat, environ, a thread's children) without a new buffer each:
// /proc gives every file a size of 0, and for such a file readFileSync allocates a fresh 64 KiB
// buffer per read and joins them. A scan of every process (finding an app that escaped its
// instance) read two files per process that way, ~0.1 ms each; this reads them into one buffer
// kept for the purpose, grown when a file is larger.
import { closeSync, openSync, readSync } from 'node:fs';

let scratch = Buffer.allocUnsafeSlow(16 * 1024);

/** A /proc file's text (latin1: bytes as they are); throws as readFileSync does (ENOENT when the process is gone). */
export function readProcFile(file: string): string {
  const fd = openSync(file, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const larger = Buffer.allocUnsafeSlow(scratch.length * 2);
        scratch.copy(larger, 0, 0, length);
        scratch = larger;
      }
      const read = readSync(fd, scratch, length, scratch.length - length, null);
      if (read === 0) return scratch.toString('latin1', 0, length);
      length += read;
    }
  } finally {
    closeSync(fd);
  }
}
