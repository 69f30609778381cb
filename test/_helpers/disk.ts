// A real full disk for tests: a small tmpfs mounted on a temp folder (needs root, or
// CAP_SYS_ADMIN, as on the CI machine). Where mount is refused there is no way to make a small
// full filesystem without one (a loop device needs mount too), so the caller skips, printing why.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, truncateSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TinyDisk {
  /** The mount point. */
  dir: string;
  /**
   * Write a filler file until the filesystem answers ENOSPC, then give `leave` bytes of it back;
   * returns the bytes it holds.
   */
  fill(leave?: number): number;
  /** Remove the filler: the space is back. */
  free(): void;
}

const mounted: string[] = [];
process.on('exit', () => {
  for (const dir of mounted) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      rmdirSync(dir);
    } catch {
      /* best effort */
    }
  }
});

/** Mount a tmpfs of `size` (e.g. `1m`); a string is the reason it could not be done (skip the test, saying so). */
export function mountTinyDisk(size = '1m'): TinyDisk | string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-tinydisk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (error) {
    rmdirSync(dir);
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim();
    return `mount -t tmpfs is not allowed here (${stderr || (error as Error).message}); a full disk cannot be made without it`;
  }
  mounted.push(dir);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill(leave = 0) {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      let total = 0;
      try {
        // Smaller and smaller writes, so that no page the filler could still use is left.
        for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
          for (;;) {
            try {
              total += writeSync(fd, chunk, 0, size);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
              break;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
      if (leave) truncateSync(filler, Math.max(0, total - leave));
      return Math.max(0, total - leave);
    },
    free() {
      rmSync(filler, { force: true });
    },
  };
}

/** Print why a full-disk test does not run; never let it pass silently. */
export function skipFullDisk(name: string, reason: string): void {
  console.log(`SKIP ${name}: ${reason}`);
}

/** A tiny disk of `size` for the test `name`, or undefined once the reason it cannot be had is printed. */
export function tinyDiskFor(name: string, size: string): TinyDisk | undefined {
  const disk = mountTinyDisk(size);
  if (typeof disk !== 'string') return disk;
  skipFullDisk(name, disk);
  return undefined;
}
