// The fan-out benches' targets (bench/fleet-targets.mjs), in a process of their own so that the
// clients are measured alone: shared by bench/fleet.ts and bench/instructions.ts.
import { spawn } from 'node:child_process';
import path from 'node:path';

/** COUNT targets answering after `delayMs`: resolves with their URLs; stop() ends them. */
export async function startTargets(count: number, delayMs: number): Promise<{ urls: string[]; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [path.join(import.meta.dirname, 'fleet-targets.mjs'), String(count), String(delayMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => {
      if (out.includes('\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`fleet targets exited ${code}`)));
  });
  return {
    urls: (JSON.parse(out.split('\n')[0]) as number[]).map((p) => `http://127.0.0.1:${p}`),
    stop: () => child.kill(),
  };
}
