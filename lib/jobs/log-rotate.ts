// Rotation of a repo's job log: logs.txt is gzipped to logs.1.txt.gz once it passes a size cap,
// older files move up one, and those past `keep` are deleted. Disk use per repo stays below
// max_size × (keep + 1), before compression.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { replaceViaTemp } from '../core/fs.ts';
import { LOG_FILE, logFiles } from './job-log.ts';

export interface RotationPolicy {
  /** Rotate logs.txt once it is at least this many bytes. */
  maxSize: number;
  /** Rotated files kept (logs.1.txt.gz … logs.N.txt.gz). 0 = drop old logs. */
  keep: number;
}

export const DEFAULT_ROTATION: RotationPolicy = { maxSize: 10 * 1024 * 1024, keep: 5 };

export interface RotationResult {
  rotated: boolean;
  size: number;
  removed: string[];
}

/**
 * If logs.txt is at least maxSize (or `force` and not empty), gzip it to logs.1.txt.gz after
 * shifting the older ones up, and drop those beyond `keep`. The caller holds the repo lock so
 * no job is writing.
 */
export async function rotateLogs(
  logsDir: string,
  policy: RotationPolicy,
  { force = false } = {},
): Promise<RotationResult> {
  const file = path.join(logsDir, LOG_FILE);
  let size = 0;
  try {
    size = (await stat(file)).size;
  } catch {
    /* no log yet */
  }
  const removed: string[] = [];
  const rotate = size > 0 && (force || size >= policy.maxSize);
  if (rotate) {
    const existing = (await logFiles(logsDir)).filter((f) => f.endsWith('.gz'));
    // Shift from the oldest down so no name is overwritten.
    for (const old of existing.reverse()) {
      const n = Number(/logs\.(\d+)\.txt\.gz$/.exec(old)![1]);
      if (n + 1 > policy.keep) {
        await rm(old, { force: true });
        removed.push(path.basename(old));
      } else {
        await rename(old, path.join(logsDir, `logs.${n + 1}.txt.gz`));
      }
    }
    if (policy.keep > 0) {
      await gzipFile(file, path.join(logsDir, 'logs.1.txt.gz'));
    }
    await rm(file, { force: true });
  }
  // A smaller `keep` than before also prunes, with or without a rotation.
  for (const old of (await logFiles(logsDir)).filter((f) => f.endsWith('.gz'))) {
    const n = Number(/logs\.(\d+)\.txt\.gz$/.exec(old)![1]);
    if (n > policy.keep) {
      await rm(old, { force: true });
      removed.push(path.basename(old));
    }
  }
  return { rotated: rotate, size, removed };
}

/** Streams `source` through gzip into a temp file renamed to `target`: memory stays flat. */
async function gzipFile(source: string, target: string): Promise<void> {
  await replaceViaTemp(
    target,
    (temp) =>
      pipeline(
        createReadStream(source),
        createGzip({ level: 6 }),
        createWriteStream(temp, { mode: 0o640, flags: 'wx' }),
      ),
    { durable: true },
  );
}

/** `10M`, `512k`, `1G`, `2000` (bytes) → bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}
