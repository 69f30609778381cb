// zstd for delta updates (docs/release.md "Delta updates"): compress a group of files, with the
// files they replace as `--patch-from` dictionary, and decompress one with its output capped by
// the kernel (ulimit -f) at the length the signed patch gives, so a bomb stops at the cap.
import type { Readable } from 'node:stream';
import { $ } from './shell.ts';
import { ConfigError, VerificationError } from './errors.ts';
import { findOnPath } from './programs.ts';

/** The window a dictionary of `dictBytes` and an output of `outBytes` need, as zstd's --memory/--long take it. */
export function windowLog(dictBytes: number, outBytes: number): number {
  const need = Math.max(dictBytes + outBytes, 1 << 20);
  return Math.min(31, Math.max(20, Math.ceil(Math.log2(need))));
}

/** True when the zstd program is on PATH. */
export const haveZstd = (PATH = process.env.PATH) => findOnPath('zstd', PATH) !== undefined;

function requireZstd(): void {
  if (!haveZstd())
    throw new ConfigError('zstd is not installed (apt-get install zstd); it is needed to make or apply patches.');
}

/** Compress `input` into `output`; with `dict`, as a patch from it (`--patch-from`). */
export async function zstdCompress(opts: {
  input: string;
  output: string;
  dict?: string;
  dictBytes?: number;
  inputBytes: number;
  level?: number;
}): Promise<void> {
  requireZstd();
  const log = windowLog(opts.dictBytes ?? 0, opts.inputBytes);
  const args = ['-q', '-f', `-${opts.level ?? 9}`, `--long=${log}`];
  if (opts.dict) args.push(`--patch-from=${opts.dict}`);
  args.push(opts.input, '-o', opts.output);
  const run = await $({ quiet: true, nothrow: true })`zstd ${args}`;
  if (run.exitCode !== 0) throw new Error(`zstd could not compress ${opts.input}: ${run.stderr.trim()}`);
}

/**
 * Decompress `input` (a stream of the compressed bytes) into `output`, which may not grow past
 * `maxBytes` (ulimit -f, in KiB, rounded up; the caller checks the exact length and digest).
 */
export async function zstdDecompress(opts: {
  input: Readable;
  output: string;
  maxBytes: number;
  dict?: string;
  dictBytes?: number;
}): Promise<void> {
  requireZstd();
  const log = windowLog(opts.dictBytes ?? 0, opts.maxBytes);
  const args = ['-d', '-q', '-f', `--memory=${1 << (log - 10)}KiB`];
  if (opts.dict) args.push(`--patch-from=${opts.dict}`);
  args.push('-o', opts.output);
  const blocks = Math.max(1, Math.ceil(opts.maxBytes / 1024));
  const run = await $({ quiet: true, nothrow: true, input: opts.input })`ulimit -f ${blocks}; exec zstd ${args}`;
  if (run.exitCode !== 0)
    throw new VerificationError(
      `the patch does not decompress within its signed length of ${opts.maxBytes} bytes: ` +
        `${run.stderr.trim() || `zstd exited ${run.exitCode ?? run.signal}`}`,
    );
}
