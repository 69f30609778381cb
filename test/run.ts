// Runs every test/**/*.test.ts file as its own process, two at a time (the CI machine has two
// cores), and prints each file's output in one piece. `--deno` runs the same files with the
// scripts under test started by Deno instead of Node (SHIPKIT_TEST_RUNTIME=deno); only files
// whose first line is `// @deno` are run then, and the runner says which were left out.
//   tsx test/run.ts [--deno] [--jobs N] [FILTER...]
// Files with a `// @alone` line run last, one at a time (they change this machine).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import minimist from 'minimist';

const args = minimist(process.argv.slice(2), { boolean: ['deno'], string: ['jobs'] });
const root = path.resolve(import.meta.dirname, '..');
const jobs = Number(args.jobs ?? process.env.TEST_JOBS ?? 2);

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) return entry === 'fixtures' ? [] : findTests(full);
    return entry.endsWith('.test.ts') ? [full] : [];
  });
}

let files = findTests(path.join(root, 'test')).sort();
const filters = args._.map(String);
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (args.deno) {
  const left = files.filter((f) => !readFileSync(f, 'utf8').startsWith('// @deno'));
  files = files.filter((f) => !left.includes(f));
  console.log(`deno: running ${files.length} files marked // @deno; not under Deno (Node-only harness): ${left.map((f) => path.basename(f)).join(', ') || 'none'}`);
}

const tsx = path.join(root, 'node_modules/tsx/dist/loader.mjs');
const failed: string[] = [];
const started = Date.now();

async function runFile(file: string): Promise<void> {
  const t0 = Date.now();
  const env = { ...process.env, FORCE_COLOR: '0', ...(args.deno ? { SHIPKIT_TEST_RUNTIME: 'deno' } : {}) };
  const child = spawn(process.execPath, ['--import', tsx, file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const code: number = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
  const name = path.relative(root, file);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (code !== 0) failed.push(name);
  process.stdout.write(`\n=== ${name} (${secs}s) ${code === 0 ? 'ok' : `FAILED (exit ${code})`}\n${output.trimEnd()}\n`);
}

// A file that changes the machine itself (installs a .deb into /etc, /usr) marks itself
// `// @alone`: it runs after all the others, by itself, so no other test sees its /etc files.
const alone = files.filter((f) => /^\/\/ @alone\b/m.test(readFileSync(f, 'utf8').slice(0, 2000)));
const queue = files.filter((f) => !alone.includes(f));
await Promise.all(Array.from({ length: Math.max(1, jobs) }, async () => {
  while (queue.length) await runFile(queue.shift()!);
}));
for (const file of alone) await runFile(file);

console.log(`\n${files.length - failed.length}/${files.length} test files passed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
