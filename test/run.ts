// Runs every test/**/*.test.ts file as its own process, two at a time (the CI machine has two
// cores), and prints each file's output in one piece. `--deno` runs the same files with the
// scripts under test started by Deno instead of Node (SHIPKIT_TEST_RUNTIME=deno); only files
// whose first line is `// @deno` are run then, and the runner says which were left out.
//   tsx test/run.ts [--deno] [--jobs N] [FILTER...]   (TEST_JOBS=N, TEST_FILE_TIMEOUT_S=900, TEST_DIR)
// Files with a `// @alone` line run last, one at a time (they change this machine).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import minimist from 'minimist';

const args = minimist(process.argv.slice(2), { boolean: ['deno'], string: ['jobs'] });
const root = path.resolve(import.meta.dirname, '..');
const jobs = Number(args.jobs ?? process.env.TEST_JOBS ?? 2);
// A file still running after this long is killed and failed, so that one hung test cannot hang
// the whole run (the slowest file takes about 2 minutes on a quiet machine).
const FILE_TIMEOUT_S = Number(process.env.TEST_FILE_TIMEOUT_S ?? 900);

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) return entry === 'fixtures' ? [] : findTests(full);
    return entry.endsWith('.test.ts') ? [full] : [];
  });
}

let files = findTests(process.env.TEST_DIR ?? path.join(root, 'test')).sort();
const filters = args._.map(String);
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (args.deno) {
  const left = files.filter((f) => !readFileSync(f, 'utf8').startsWith('// @deno'));
  files = files.filter((f) => !left.includes(f));
  console.log(
    `deno: running ${files.length} files marked // @deno; not under Deno (Node-only harness): ${left.map((f) => path.basename(f)).join(', ') || 'none'}`,
  );
}

const tsx = path.join(root, 'node_modules/tsx/dist/loader.mjs');
const failed: string[] = [];
// The test files running now, each its own process group: a SIGTERM or Ctrl-C to this runner
// ends them and everything they started, instead of leaving servers behind.
const running = new Set<number>();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(signal, () => {
    for (const pid of running) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    process.stdout.write(`\n${signal}: stopped ${running.size} running test file(s) and what they started\n`);
    process.exit(130);
  });
}
const started = Date.now();

async function runFile(file: string): Promise<void> {
  const t0 = Date.now();
  const env = { ...process.env, FORCE_COLOR: '0', ...(args.deno ? { SHIPKIT_TEST_RUNTIME: 'deno' } : {}) };
  // Its own process group, so that a file that outlives FILE_TIMEOUT_S goes with what it started.
  const child = spawn(process.execPath, ['--import', tsx, file], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child.pid!);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }, FILE_TIMEOUT_S * 1000);
  const code: number = await new Promise((resolve) =>
    child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1))),
  );
  clearTimeout(timer);
  running.delete(child.pid!);
  const name = path.relative(root, file);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  const verdict = timedOut
    ? `FAILED (still running after ${FILE_TIMEOUT_S} s: killed)`
    : code !== 0
      ? `FAILED (exit ${code})`
      : notRun(output)
        ? `FAILED (${notRun(output)})`
        : 'ok';
  if (verdict !== 'ok') failed.push(name);
  process.stdout.write(`\n=== ${name} (${secs}s) ${verdict}\n${output.trimEnd()}\n`);
}

/**
 * uvu exits 0 when a `before` hook throws: it prints the error and counts none of the file's
 * tests as passed. A file whose summary counts fewer passed and skipped tests than it has did
 * not run them all; say so instead of calling it ok.
 */
function notRun(output: string): string | undefined {
  for (const m of output.matchAll(/Total:\s+(\d+)\s+Passed:\s+(\d+)\s+Skipped:\s+(\d+)/g)) {
    const [total, passed, skipped] = m.slice(1).map(Number);
    if (passed + skipped < total) return `${total - passed - skipped} of ${total} tests did not pass`;
  }
  return undefined;
}

// A file that changes the machine itself (installs a .deb into /etc, /usr) marks itself
// `// @alone`: it runs after all the others, by itself, so no other test sees its /etc files.
const alone = files.filter((f) => /^\/\/ @alone\b/m.test(readFileSync(f, 'utf8').slice(0, 2000)));
const queue = files.filter((f) => !alone.includes(f));
await Promise.all(
  Array.from({ length: Math.max(1, jobs) }, async () => {
    while (queue.length) await runFile(queue.shift()!);
  }),
);
for (const file of alone) await runFile(file);

console.log(
  `\n${files.length - failed.length}/${files.length} test files passed in ${((Date.now() - started) / 1000).toFixed(1)}s`,
);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
