// Runs every test/**/*.test.ts file, TEST_JOBS at a time (the CI machine has two cores, which
// three files at a time kept only 80 % busy: .ci/run runs four), and prints each file's output in
// one piece. An e2e file gets a process of its own, the longest first (test/durations.json holds the
// seconds each took; `--record` rewrites it). The unit files share a few processes
// (test/_helpers/unit-batch.ts), which saves a Node and tsx start for each of them.
// `--deno` runs the files whose first line is `// @deno` with the scripts under test started by
// Deno instead of Node (SHIPKIT_TEST_RUNTIME=deno), and says which were left out; `--with-deno`
// runs every file under Node and those under Deno too, in one pool (one tail instead of two).
// Under Node the scripts start from one file bundled from the sources at the run's start, as
// shipped (a tenth of the CPU tsx spends compiling each start); `--sources` starts them with tsx.
//   tsx test/run.ts [--deno | --with-deno] [--also-node DIR] [--sources] [--jobs N] [--record] [FILTER...]
//   (TEST_JOBS=N, TEST_FILE_TIMEOUT_S=900, TEST_DIR)
// Files with a `// @alone` line run last, one at a time (they change this machine).
// `--also-node DIR` runs the files marked `// @each-node` (the install tests whose subject is
// how shipkit runs on a Node: npm, the one file, a checkout; not the .deb's, whose dpkg install
// and units do not depend on Node's version) once more in the same pool, under DIR/node with DIR
// first on the PATH (CI's Node 24: npm, tsx and what they install run on it).
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';

const args = minimist(process.argv.slice(2), {
  boolean: ['deno', 'with-deno', 'record', 'sources'],
  string: ['jobs', 'also-node'],
});
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
const denoFiles = files.filter((f) => readFileSync(f, 'utf8').startsWith('// @deno'));
if (args.deno || args['with-deno']) {
  const left = files.filter((f) => !denoFiles.includes(f));
  console.log(
    `deno: running ${denoFiles.length} files marked // @deno; not under Deno (Node-only harness): ${left.map((f) => path.basename(f)).join(', ') || 'none'}`,
  );
}
/** The bin folder of the other Node the `// @each-node` files run under too, and how its runs are named. */
const alsoNode = args['also-node'] ? path.resolve(String(args['also-node'])) : undefined;
const alsoNodePrefix = alsoNode ? `[node ${otherNodeMajor(alsoNode)}] ` : '';
const eachNodeFiles = files.filter((f) => /^\/\/ @each-node\b/m.test(readFileSync(f, 'utf8').slice(0, 2000)));
/** Each file to run, with the runtime its scripts are started by. */
const runs: Run[] = args.deno
  ? denoFiles.map((file) => ({ file, deno: true }))
  : [
      ...files.map((file) => ({ file, deno: false })),
      ...(alsoNode ? eachNodeFiles.map((file) => ({ file, deno: false, node: alsoNode })) : []),
      ...(args['with-deno'] ? denoFiles.map((file) => ({ file, deno: true })) : []),
    ];

interface Run {
  file: string;
  deno: boolean;
  /** The bin folder of the Node that runs the file, when not this one's. */
  node?: string;
}

function otherNodeMajor(dir: string): string {
  const version = spawnSync(path.join(dir, 'node'), ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) {
    console.error(`--also-node ${dir}: ${path.join(dir, 'node')} --version failed: ${version.error ?? version.stderr}`);
    process.exit(2);
  }
  return version.stdout.trim().replace(/^v/, '').split('.')[0];
}

const tsx = path.join(root, 'node_modules/tsx/dist/loader.mjs');

/** dist/shipkit.mjs built from the sources as they are now, in a folder removed at exit. */
function bundleForTests(): string {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-test-bundle-'));
  // Builds that run as a repo's own user start it too.
  chmodSync(outdir, 0o755);
  process.on('exit', () => rmSync(outdir, { recursive: true, force: true }));
  const built = spawnSync(process.execPath, ['--import', tsx, 'tools/bundle.ts', 'shipkit', '--outdir', outdir], {
    cwd: root,
    encoding: 'utf8',
  });
  if (built.status !== 0) {
    console.error(`could not bundle the scripts for the tests:\n${built.stdout}${built.stderr}`);
    process.exit(1);
  }
  return path.join(outdir, 'shipkit.mjs');
}
const bundle = args.sources || args.deno ? undefined : bundleForTests();
const batchRunner = path.join(root, 'test', '_helpers', 'unit-batch.ts');
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

/** One process: an e2e file by itself, or a batch of unit files. */
interface Task {
  name: string;
  files: string[];
  estimate: number;
  batch: boolean;
  deno: boolean;
  node?: string;
}

const durationsFile = path.join(root, 'test', 'durations.json');
const durations: Record<string, number> = existsSync(durationsFile)
  ? JSON.parse(readFileSync(durationsFile, 'utf8'))
  : {};
const measured: Record<string, number> = {};
const relative = (file: string) => path.relative(root, file);
/** Names a file's run under Deno in the output, in test/durations.json and among the failed. */
const DENO_PREFIX = '[deno] ';
/** What names a run of a file under Deno or the other Node (none under this one). */
const prefixOf = ({ deno, node }: { deno: boolean; node?: string }) =>
  deno ? DENO_PREFIX : node ? alsoNodePrefix : '';
/** The seconds a run took last time it was recorded (under this Node, when never under its own runtime), or `otherwise`. */
const estimate = (run: Run, otherwise: number) =>
  durations[prefixOf(run) + relative(run.file)] ?? durations[relative(run.file)] ?? otherwise;

async function runTask(task: Task): Promise<void> {
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
  delete env.SHIPKIT_TEST_BUNDLE;
  if (task.deno) env.SHIPKIT_TEST_RUNTIME = 'deno';
  else if (bundle) env.SHIPKIT_TEST_BUNDLE = bundle;
  if (task.node) env.PATH = `${task.node}${path.delimiter}${env.PATH ?? ''}`;
  const argv = task.batch ? [batchRunner, ...task.files] : task.files;
  // Its own process group, so that a file that outlives FILE_TIMEOUT_S goes with what it started.
  const child = spawn(task.node ? path.join(task.node, 'node') : process.execPath, ['--import', tsx, ...argv], {
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
  const seconds = (Date.now() - t0) / 1000;
  if (!task.batch) measured[task.name] = Math.round(seconds * 10) / 10;
  const verdict = timedOut
    ? `FAILED (still running after ${FILE_TIMEOUT_S} s: killed)`
    : code !== 0
      ? `FAILED (exit ${code})`
      : notRun(output)
        ? `FAILED (${notRun(output)})`
        : 'ok';
  if (verdict !== 'ok') failed.push(...failedFiles(task, output));
  process.stdout.write(`\n=== ${task.name} (${seconds.toFixed(1)}s) ${verdict}\n${output.trimEnd()}\n`);
}

/**
 * The files of a failed task to name: in a batch, those whose part of the output (it follows the
 * file's name on a line of its own) shows a failure, or all of them when none does (a crash).
 */
function failedFiles(task: Task, output: string): string[] {
  const prefix = prefixOf(task);
  if (!task.batch) return [task.name];
  const names = new Set(task.files.map(relative));
  const parts = new Map<string, string>();
  let current = '';
  for (const line of output.split('\n')) {
    if (names.has(line.trim())) current = line.trim();
    else if (current) parts.set(current, (parts.get(current) ?? '') + line + '\n');
  }
  const failing = [...parts].filter(([, text]) => /\bFAIL\b|✘/.test(text)).map(([name]) => name);
  return (failing.length ? failing : [...names]).map((name) => prefix + name);
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
const isAlone = (f: string) => /^\/\/ @alone\b/m.test(readFileSync(f, 'utf8').slice(0, 2000));
const isUnit = (f: string) => relative(f).startsWith('test/unit/');
const single = (run: Run): Task => ({
  name: prefixOf(run) + relative(run.file),
  files: [run.file],
  estimate: estimate(run, 30),
  batch: false,
  deno: run.deno,
  node: run.node,
});

/** As many unit batches as jobs per runtime, each unit file (the slowest first) to the batch with the least to do. */
function unitBatches(units: Run[], deno: boolean): Task[] {
  const count = Math.min(units.length, Math.max(1, jobs));
  const batches: Task[] = Array.from({ length: count }, (_, i) => ({
    name: `${deno ? DENO_PREFIX : ''}test/unit (batch ${i + 1} of ${count})`,
    files: [],
    estimate: 0,
    batch: true,
    deno,
  }));
  for (const unit of [...units].sort((a, b) => estimate(b, 2) - estimate(a, 2))) {
    const lightest = batches.reduce((a, b) => (b.estimate < a.estimate ? b : a));
    lightest.files.push(unit.file);
    lightest.estimate += estimate(unit, 2);
  }
  return batches;
}

const alone = runs.filter((r) => isAlone(r.file));
const pooled = runs.filter((r) => !isAlone(r.file));
const byEstimate = (a: Task, b: Task) => b.estimate - a.estimate;
// Node's runs (this one's and the other's) first, then Deno's, each the longest first: Deno's fill
// the end of Node's. The install tests have no unit files, so the other Node never gets a batch.
const queue = [false, true].flatMap((deno) => {
  const mine = pooled.filter((r) => r.deno === deno);
  return [
    ...mine.filter((r) => !isUnit(r.file)).map(single),
    ...unitBatches(
      mine.filter((r) => isUnit(r.file)),
      deno,
    ),
  ].sort(byEstimate);
});
// A file never runs under two runtimes at once (they would share its fixed names: users, folders).
const busy = new Set<string>();
const waiting: Array<() => void> = [];
async function nextTask(): Promise<Task | undefined> {
  for (;;) {
    const index = queue.findIndex((t) => !t.files.some((f) => busy.has(f)));
    if (index !== -1) {
      const [task] = queue.splice(index, 1);
      for (const f of task.files) busy.add(f);
      return task;
    }
    if (queue.length === 0) return undefined;
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
}
await Promise.all(
  Array.from({ length: Math.max(1, jobs) }, async () => {
    for (let task = await nextTask(); task; task = await nextTask()) {
      await runTask(task);
      for (const f of task.files) busy.delete(f);
      for (const wake of waiting.splice(0)) wake();
    }
  }),
);
for (const run of alone) await runTask(single(run));
if (args.record) {
  const sorted = Object.fromEntries(
    Object.entries({ ...durations, ...measured }).sort(([a], [b]) => a.localeCompare(b)),
  );
  writeFileSync(durationsFile, JSON.stringify(sorted, null, 2) + '\n');
}

console.log(
  `\n${runs.length - failed.length}/${runs.length} test files passed in ${((Date.now() - started) / 1000).toFixed(1)}s`,
);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
