// A control plane's DATA as it looks after a while, for the benches that read or copy one
// (replay, backup): fleet.log lines of N hosts, a journal of N finished jobs, M MB of job logs.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeLine } from '../lib/core/append-log.ts';
import { fleetLogFile } from '../lib/fleet/fleet-store.ts';
import { journalFile } from '../lib/jobs/local/journal.ts';
import { rolloutBucket } from '../lib/release/format/bucket.ts';
import { seededJob } from '../test/fixtures/hooks/seeded-journal.ts';

/** What a seeded host runs: its version, the one before, the digest it verified. */
export type SeededHost = (i: number) => { version: string; previous: string; sha256?: string };

/** N report lines of `app` (default `web`, every host on 1.1 from 1.0), one per host, as hook-server writes them. */
export function fleetLog(
  count: number,
  { app = 'web', host: runs = () => ({ version: '1.1', previous: '1.0' }) }: { app?: string; host?: SeededHost } = {},
): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const host = randomBytes(16).toString('hex');
    const { version, previous, sha256 } = runs(i);
    const entry = {
      host,
      version,
      previous,
      seq: 3,
      ...(sha256 ? { sha256 } : {}),
      bucket: rolloutBucket(host, version),
      claimed_bucket: null,
      result: 'updated',
      reason: '',
      seconds: 2.5,
      at: Date.now(),
    };
    lines.push(encodeLine({ kind: 'report', app, entry }));
  }
  return lines.join('');
}

/** N finished jobs' journal lines. */
export function journalLines(count: number): string {
  return Array.from({ length: count }, (_, i) => encodeLine(seededJob(i + 1))).join('');
}

/**
 * DATA with `jobs` jobs in its journal, `hosts` hosts in fleet.log, and `logsMb` MB of job logs
 * (logs.txt and its rotations, 64 MB each, in ten repos): lines of a build's output, a time, a
 * step and hex that changes, compressible as real logs are.
 */
export function seedData(data: string, { jobs = 10_000, hosts = 10_000, logsMb = 1024 } = {}): void {
  mkdirSync(path.dirname(journalFile(data)), { recursive: true, mode: 0o700 });
  writeFileSync(journalFile(data), journalLines(jobs), { mode: 0o600 });
  mkdirSync(path.dirname(fleetLogFile(data)), { recursive: true, mode: 0o700 });
  writeFileSync(fleetLogFile(data), fleetLog(hosts), { mode: 0o600 });
  const block: string[] = [];
  for (let i = 0, size = 0; size < 8 << 20; i++) {
    const line = `11:${String(i % 60).padStart(2, '0')}:07.${i % 1000} | npm http fetch GET 200 https://registry.npmjs.org/pkg-${i % 997} ${randomBytes(12).toString('hex')} ${i}ms\n`;
    block.push(line);
    size += line.length;
  }
  const text = Buffer.from(block.join(''));
  const FILE_MB = 64;
  for (let n = 0; n * FILE_MB < logsMb; n++) {
    const dir = path.join(data, 'logs', `octo%2Frepo${n % 10}`);
    mkdirSync(dir, { recursive: true });
    const name = n < 10 ? 'logs.txt' : `logs.txt.${Math.floor(n / 10)}`;
    const mb = Math.min(FILE_MB, logsMb - n * FILE_MB);
    const parts: Buffer[] = [];
    for (let size = 0; size < mb << 20; size += text.length)
      parts.push(text.subarray(0, Math.min(text.length, (mb << 20) - size)));
    writeFileSync(path.join(dir, name), Buffer.concat(parts));
  }
}
