// Runs every test/**/*.test.ts file, TEST_JOBS at a time, each with a TMPDIR of its own (everything
// it started is ended with it, however the run ends), and prints each file's output in one piece
// under a `=== 12/287` line; when nothing finished for TEST_PROGRESS_S (30 s), the files running.
// docs/install.md "Tests and checks" says what each flag does and how files are scheduled.
//   tsx test/run.ts [--deno | --with-deno] [--also-node DIR] [--sources] [--jobs N] [--record] [--list-node-only] [FILTER...]
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import minimist from 'minimist';
import { signalGroup } from '../lib/core/process-group.ts';
import { failedInBatch, notRun } from './_helpers/run-output.ts';
import { clock, slowestLines, watchProgress } from './_helpers/run-progress.ts';
import { endProcesses, makeRunFolder, makeTmpDir, removeFolder } from './_helpers/run-sandbox.ts';

const args = minimist(process.argv.slice(2), {
  boolean: ['deno', 'with-deno', 'record', 'sources', 'list-node-only'],
  string: ['jobs', 'also-node'],
});
const root = path.resolve(import.meta.dirname, '..');
const jobs = Math.max(1, Number(args.jobs ?? process.env.TEST_JOBS ?? 2));
// A file still running after this long is killed and failed, so that one hung test cannot hang
// the whole run (the slowest file takes about 2 minutes on a quiet machine).
const FILE_TIMEOUT_S = Number(process.env.TEST_FILE_TIMEOUT_S ?? 900);
/** More failures than this are not a flake: the failed files are not run again. */
const RETRY_AT_MOST = 5;
const PROGRESS_S = Number(process.env.TEST_PROGRESS_S ?? 30);

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
const relative = (file: string) => path.relative(root, file);
const head = (f: string) => readFileSync(f, 'utf8').slice(0, 2000);
const denoFiles = files.filter((f) => head(f).startsWith('// @deno'));
/** The bin folder of the other Node the `// @each-node` files run under too, and how its runs are named. */
const alsoNode = args['also-node'] ? path.resolve(String(args['also-node'])) : undefined;
const alsoNodePrefix = alsoNode ? `[node ${otherNodeMajor(alsoNode)}] ` : '';
const eachNodeFiles = files.filter((f) => /^\/\/ @each-node\b/m.test(head(f)));
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

/** What the run holds, in a few lines: how many runs under which runtime, and the Node-only files by name only when asked. */
function describeRun(): string {
  const count = (pick: (r: Run) => boolean) => runs.filter(pick).length;
  const parts = [`${count((r) => !r.deno && !r.node)} under Node`];
  if (alsoNode) parts.push(`${count((r) => Boolean(r.node))} under ${alsoNodePrefix.trim()}`);
  if (args.deno || args['with-deno']) parts.push(`${count((r) => r.deno)} under Deno (marked // @deno)`);
  let text = `running ${runs.length} test files (${parts.join(', ')}), ${jobs} at a time\n`;
  if (args.deno || args['with-deno']) {
    const left = files.filter((f) => !denoFiles.includes(f));
    text += args['list-node-only']
      ? `Node-only files, not run under Deno: ${left.length}\n${left.map((f) => `  ${relative(f)}\n`).join('')}`
      : `Node-only files, not run under Deno: ${left.length} (--list-node-only names them)\n`;
  }
  return text;
}
process.stdout.write(describeRun());

const tsx = path.join(root, 'node_modules/tsx/dist/loader.mjs');

/** dist/shipkit.mjs built from the sources as they are now, in a folder removed at exit. */
function bundleForTests(): string {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-test-bundle-'));
  // Builds that run as a repo's own user start it too.
  chmodSync(outdir, 0o755);
  process.on('exit', () => removeFolder(outdir));
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
/** Files that failed once, each run again alone at the end; those that pass then are named as flaky. */
const failedTasks: Task[] = [];
const flaky: string[] = [];
/** The output of each failed run, printed again at the end: a log's tail then shows why. */
const failedOutput: string[] = [];
// Each file's TMPDIR is a folder of this one: what a file started (its own process group, or
// not: a daemon, a build, PostgreSQL) is found by it and ended with the file, or with the run.
const runFolder = makeRunFolder();
process.on('exit', () => removeFolder(runFolder));
let tmpDirs = 0;
/** The test processes running now, each the leader of its own process group. */
const running = new Set<number>();
const progress = watchProgress({ total: runs.length, quietMs: PROGRESS_S * 1000 });
let stopping: Promise<void> | undefined;
// One signal often comes two or three times (a terminal's Ctrl-C reaches npm, tsx and this
// process, and npm and tsx pass it on): the first starts the stop, which takes seconds at most.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
  process.on(signal, () => void (stopping ??= stopRun(signal)));

/** On a signal: end every test file running and everything they started, say so, exit 130. */
async function stopRun(signal: NodeJS.Signals): Promise<void> {
  progress.stop();
  // Started by the tsx CLI, this process must answer the signal tsx passes on within 30 ms, or
  // tsx SIGKILLs it: the first look through /proc waits until the copies have come.
  await sleep(200);
  const files = running.size;
  const { names, survived } = await endProcesses(runFolder, [...running]);
  removeFolder(runFolder);
  const what = names ? ` and what they started (${names})` : ' and what they started';
  process.stdout.write(`\n${signal}: stopped ${files} running test file(s)${what}\n`);
  if (survived.length) process.stdout.write(`still running after SIGKILL: ${survived.join(', ')}\n`);
  process.exit(130);
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
/** Names a file's run under Deno in the output, in test/durations.json and among the failed. */
const DENO_PREFIX = '[deno] ';
/** What names a run of a file under Deno or the other Node (none under this one). */
const prefixOf = ({ deno, node }: { deno: boolean; node?: string }) =>
  deno ? DENO_PREFIX : node ? alsoNodePrefix : '';
/** The seconds a run took last time it was recorded (under this Node, when never under its own runtime), or `otherwise`. */
const estimate = (run: Run, otherwise: number) =>
  durations[prefixOf(run) + relative(run.file)] ?? durations[relative(run.file)] ?? otherwise;

/**
 * The environment of a task's process: its runtime, the bundle, its own TMPDIR, and its own
 * XDG_CONFIG_HOME (what `release history` remembers of each DEST stays in the run, not in ~/.config).
 */
function taskEnv(task: Task, tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FORCE_COLOR: '0',
    TMPDIR: tmp,
    XDG_CONFIG_HOME: path.join(tmp, 'config'),
  };
  delete env.SHIPKIT_TEST_BUNDLE;
  if (task.deno) env.SHIPKIT_TEST_RUNTIME = 'deno';
  else if (bundle) env.SHIPKIT_TEST_BUNDLE = bundle;
  if (task.node) env.PATH = `${task.node}${path.delimiter}${env.PATH ?? ''}`;
  return env;
}

async function runTask(task: Task): Promise<void> {
  if (stopping) return;
  const t0 = Date.now();
  const tmp = makeTmpDir(runFolder, ++tmpDirs);
  const argv = task.batch ? [batchRunner, ...task.files] : task.files;
  // Its own process group: a terminal's Ctrl-C reaches this runner alone, which ends the files
  // and what they started (stopRun), and a file past FILE_TIMEOUT_S is killed with its group.
  const child = spawn(task.node ? path.join(task.node, 'node') : process.execPath, ['--import', tsx, ...argv], {
    cwd: root,
    env: taskEnv(task, tmp),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child.pid!);
  progress.start(task.name);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child.pid, 'SIGKILL');
  }, FILE_TIMEOUT_S * 1000);
  const code: number = await new Promise((resolve) =>
    child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1))),
  );
  clearTimeout(timer);
  if (stopping) return; // stopRun ends what is left and says so
  const seconds = (Date.now() - t0) / 1000;
  const left = await endProcesses(tmp, [child.pid!]);
  running.delete(child.pid!);
  removeFolder(tmp);
  if (!task.batch) measured[task.name] = Math.round(seconds * 10) / 10;
  const verdict = timedOut
    ? `FAILED (still running after ${FILE_TIMEOUT_S} s: killed)`
    : code !== 0
      ? `FAILED (exit ${code})`
      : notRun(output)
        ? `FAILED (${notRun(output)})`
        : 'ok';
  if (verdict !== 'ok')
    failed.push(
      ...(task.batch ? failedInBatch(task.files.map(relative), output) : [task.files[0]]).map(
        (f) => prefixOf(task) + relative(f),
      ),
    );
  if (verdict !== 'ok' && !task.batch) failedTasks.push(task);
  if (verdict !== 'ok') failedOutput.push(`=== ${task.name} ${verdict}\n${lastLines(output, 80)}`);
  const count = progress.finish(task.name, task.files.length, verdict === 'ok');
  const ended = left.names ? `; ended what it left running: ${left.names}` : '';
  process.stdout.write(
    `\n=== ${count} ${task.name} (${seconds.toFixed(1)}s) ${verdict}${ended}\n${output.trimEnd()}\n`,
  );
}

const lastLines = (text: string, n: number) => text.trimEnd().split('\n').slice(-n).join('\n');

// A file that changes the machine itself (installs a .deb into /etc, /usr) marks itself
// `// @alone`: it runs after all the others, by itself, so no other test sees its /etc files.
const isAlone = (f: string) => /^\/\/ @alone\b/m.test(head(f));
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
  const count = Math.min(units.length, jobs);
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
    if (stopping) return undefined;
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
  Array.from({ length: jobs }, async () => {
    for (let task = await nextTask(); task; task = await nextTask()) {
      await runTask(task);
      for (const f of task.files) busy.delete(f);
      for (const wake of waiting.splice(0)) wake();
    }
  }),
);
for (const run of alone) await runTask(single(run));
// A file that failed is run once more, by itself: one that passes then is flaky, and is named
// as such below so it gets fixed; one that fails again fails the run. Batches of unit files
// (fast, no servers) are not run again.
if (failedTasks.length > 0 && failedTasks.length <= RETRY_AT_MOST && !stopping) {
  console.log(`\nrunning ${failedTasks.length} failed file(s) once more, alone:`);
  for (const task of failedTasks.splice(0)) {
    const before = failed.length;
    await runTask(task);
    if (failed.length === before) {
      flaky.push(task.name);
      failed.splice(failed.indexOf(task.name), 1);
    } else failed.splice(before); // named once
  }
}
await stopping; // when stopped by a signal, stopRun exits
progress.stop();
if (args.record) {
  const sorted = Object.fromEntries(
    Object.entries({ ...durations, ...measured }).sort(([a], [b]) => a.localeCompare(b)),
  );
  writeFileSync(durationsFile, JSON.stringify(sorted, null, 2) + '\n');
}

process.stdout.write(`\n${slowestLines(measured)}`);
const took = Date.now() - started;
const minutes = took >= 60_000 ? ` (${clock(took)})` : '';
console.log(
  `\n${runs.length - failed.length}/${runs.length} test files passed in ${(took / 1000).toFixed(1)}s${minutes}`,
);
if (failedOutput.length)
  console.log(`\nthe failed runs again (their last 80 lines):\n\n${failedOutput.join('\n\n')}\n`);
if (flaky.length) console.log(`FLAKY (failed, then passed run alone; fix them): ${flaky.join(', ')}`);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
