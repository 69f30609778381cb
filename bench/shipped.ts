// shipkit as shipped, for the benches: the one file (`npm run bundle`'s dist/shipkit.mjs), built
// into a private folder so another `npm run bundle` in the same checkout cannot swap it mid-run.
// `npm run bench` builds it once and hands it on in SHIPKIT_BENCH_BUNDLE; a bench run alone
// builds its own, and removes it when it ends. SHIPKIT_BENCH_BUNDLE=/usr/bin/shipkit (or any installed
// bin) times that one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');

export function shippedShipkit(): string {
  if (process.env.SHIPKIT_BENCH_BUNDLE) return process.env.SHIPKIT_BENCH_BUNDLE;
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-bundle-'));
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'tools/bundle.ts', 'shipkit', '--outdir', outdir],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  process.env.SHIPKIT_BENCH_BUNDLE = path.join(outdir, 'shipkit.mjs');
  // Built here, so removed here when this process ends (the benches it starts use it before then).
  process.on('exit', () => rmSync(outdir, { recursive: true, force: true }));
  return process.env.SHIPKIT_BENCH_BUNDLE;
}

/** argv to run SCRIPT of the shipped shipkit: [node, file, SCRIPT] (or [bin, SCRIPT]). */
export function shippedArgv(script: string): string[] {
  const file = shippedShipkit();
  return file.endsWith('.mjs') ? [process.execPath, file, script] : [file, script];
}
