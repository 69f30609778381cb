import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openJournal, type Journal } from '../../../../lib/jobs/local/journal.ts';
import { type Job } from '../../../../lib/jobs/job.ts';
import { createJobQueue } from '../../../../lib/jobs/local/queue.ts';
import type { RunOutcome } from '../../../../lib/jobs/job-queue.ts';
import { createProcessRunner, jobArguments, trimOutput } from '../../../../lib/jobs/process/runner.ts';
import { removeJobFiles } from '../../../../lib/jobs/local/recovery.ts';
import { createSpawner } from '../../../../lib/jobs/process/spawner.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { FAKE_BUILD } from '../../../fixtures/hooks/deliveries.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

/** A runner whose jobs finish when the test says so. */
function manualRunner() {
  const started: Job[] = [];
  const finishers = new Map<string, (o: RunOutcome) => void>();
  return {
    started,
    run: (job: Job) =>
      new Promise<RunOutcome>((resolve) => {
        started.push({ ...job });
        finishers.set(job.id, resolve);
      }),
    finish(id: string, exit = 0) {
      finishers.get(id)!({ exit });
    },
  };
}

async function setup(concurrency = 2) {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const runner = manualRunner();
  const queue = createJobQueue({
    journal,
    concurrency,
    run: runner.run,
    log: silentLogger,
    jobsDir: path.join(dir, 'jobs'),
  });
  queue.resume();
  return { dir, journal, runner, queue };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

test('global concurrency, and never two jobs of one repo at once', async () => {
  const { runner, queue } = await setup(2);
  const a1 = (await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1' })).job;
  const a2 = (await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v2' })).job;
  const b = (await queue.enqueue({ repo: 'o/b', kind: 'build', branch: 'main', sha: 'a'.repeat(40) })).job;
  const c = (await queue.enqueue({ repo: 'o/c', kind: 'build', branch: 'main', sha: 'a'.repeat(40) })).job;
  await tick();
  assert.equal(
    runner.started.map((j) => j.id),
    [a1.id, b.id],
  );
  runner.finish(a1.id);
  await waitFor(() => runner.started.length === 3);
  assert.is(runner.started[2].id, a2.id, 'the next job of o/a, in arrival order');
  runner.finish(b.id);
  await waitFor(() => runner.started.length === 4);
  assert.is(runner.started[3].id, c.id);
  runner.finish(a2.id, 1);
  runner.finish(c.id);
  await waitFor(() => queue.get(c.id)?.state === 'succeeded');
  assert.is(queue.get(a2.id)?.state, 'failed');
  assert.is(queue.get(a2.id)?.exit, 1);
});

test('a queued push superseded by a newer push to the same branch; other branches and releases stay', async () => {
  const { runner, queue } = await setup(1);
  const running = (await queue.enqueue({ repo: 'o/a', kind: 'build', branch: 'main', sha: '1'.repeat(40) })).job;
  await tick();
  const old = (await queue.enqueue({ repo: 'o/a', kind: 'build', branch: 'main', sha: '2'.repeat(40) })).job;
  const otherBranch = (await queue.enqueue({ repo: 'o/a', kind: 'build', branch: 'dev', sha: '3'.repeat(40) })).job;
  const release = (await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1' })).job;
  const newer = (await queue.enqueue({ repo: 'o/a', kind: 'build', branch: 'main', sha: '4'.repeat(40) })).job;
  assert.is(queue.get(old.id)?.state, 'superseded');
  assert.match(queue.get(old.id)!.reason!, newer.id);
  assert.is(queue.get(running.id)?.state, 'running', 'a running job is never superseded');
  assert.is(queue.get(otherBranch.id)?.state, 'queued');
  assert.is(queue.get(release.id)?.state, 'queued');
  for (const id of [running.id, otherBranch.id, release.id]) {
    runner.finish(id);
    await waitFor(
      () =>
        runner.started.some((j) => j.id !== id && queue.get(j.id)?.state === 'running') ||
        queue.get(newer.id)?.state === 'running',
    );
  }
  runner.finish(newer.id);
  await waitFor(() => queue.get(newer.id)?.state === 'succeeded');
  assert.not.ok(runner.started.some((j) => j.id === old.id));
});

test('a delivery is deduped while queued or running; a redelivery after it finished runs again', async () => {
  const { runner, queue } = await setup(1);
  const first = await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' });
  const again = await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' });
  assert.ok(again.duplicate);
  assert.is(again.job.id, first.job.id);
  await waitFor(() => runner.started.length === 1, { what: 'the job to start' });
  assert.ok(
    (await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' })).duplicate,
    'while running',
  );
  runner.finish(first.job.id);
  await waitFor(() => queue.get(first.job.id)?.state === 'succeeded');
  const retry = await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' });
  assert.not.ok(retry.duplicate);
  assert.is.not(retry.job.id, first.job.id);
});

test('a redelivery that arrives while the first copy is being flushed is answered only once it is on disk', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow: Journal = {
    ...journal,
    jobs: journal.jobs,
    add: (job: Job, supersedes?: string[]) => journal.add(job, supersedes).then((written) => gate.then(() => written)),
  };
  const queue = createJobQueue({
    journal: slow,
    concurrency: 1,
    run: manualRunner().run,
    log: silentLogger,
    jobsDir: path.join(dir, 'jobs'),
  });
  const first = queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' });
  let answered = false;
  const again = queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1', deliveryId: 'D1' }).then((r) => {
    answered = true;
    return r;
  });
  await tick();
  assert.not.ok(answered, 'no answer before the first copy is durable');
  release();
  const [a, b] = await Promise.all([first, again]);
  assert.ok(b.duplicate);
  assert.is(b.job.id, a.job.id);
  await journal.close();
});

test('recovery: a status file settles a job that ended while down; otherwise interrupted and queued once more', async () => {
  const dir = tmpDir();
  const jobsDir = path.join(dir, 'jobs');
  let journal = await openJournal(dir);
  const base = {
    repo: 'o/a',
    kind: 'build' as const,
    sha: null,
    ref: null,
    branch: 'main',
    tag: null,
    cloneUrl: null,
    deliveryId: null,
    forge: null,
    exit: null,
    queued: '',
    started: '',
    finished: null,
    reason: null,
    pgid: null,
  };
  const done: Job = { ...base, id: '20260101-000000-aaaaaa', seq: 1, state: 'running', attempts: 1, interruptions: 0 };
  const cut: Job = {
    ...base,
    id: '20260101-000000-bbbbbb',
    seq: 2,
    repo: 'o/b',
    state: 'running',
    attempts: 1,
    interruptions: 0,
  };
  const worn: Job = {
    ...base,
    id: '20260101-000000-cccccc',
    seq: 3,
    repo: 'o/c',
    state: 'running',
    attempts: 3,
    interruptions: 2,
  };
  await journal.write([done, cut, worn]);
  await journal.close();
  mkdirSync(path.join(jobsDir, done.id), { recursive: true });
  writeFileSync(path.join(jobsDir, done.id, 'status-1'), '0\n');
  // A wrapper caught between opening its status file and writing the line: no status, not exit 0.
  mkdirSync(path.join(jobsDir, cut.id), { recursive: true });
  writeFileSync(path.join(jobsDir, cut.id, 'status-1'), '');
  journal = await openJournal(dir);
  const runner = manualRunner();
  const told: string[] = [];
  const queue = createJobQueue({
    journal,
    concurrency: 4,
    run: runner.run,
    log: silentLogger,
    jobsDir,
    maxInterruptions: 2,
    onStart: (job) => told.push(`start ${job.id} ${job.state} ${job.attempts}`),
    onEnd: (job) => told.push(`end ${job.id} ${job.state}`),
  });
  const killed: string[] = [];
  await queue.recover(async (job) => {
    killed.push(job.id);
  });
  // Listeners hear of the jobs recovery ended (a commit status must not stay pending), not of the one queued again.
  assert.equal(told.sort(), [`end ${done.id} succeeded`, `end ${worn.id} interrupted`]);
  told.length = 0;
  assert.is(queue.get(done.id)?.state, 'succeeded');
  assert.is(queue.get(cut.id)?.state, 'queued');
  assert.is(queue.get(cut.id)?.interruptions, 1);
  assert.is(queue.get(worn.id)?.state, 'interrupted', 'interrupted too often: left alone');
  assert.equal(killed.sort(), [cut.id, worn.id]);
  queue.resume();
  await waitFor(() => runner.started.length === 1);
  assert.is(runner.started[0].id, cut.id);
  assert.is(runner.started[0].attempts, 2);
  runner.finish(cut.id);
  await waitFor(() => queue.get(cut.id)?.state === 'succeeded');
  assert.equal(
    told,
    [`start ${cut.id} running 2`, `end ${cut.id} succeeded`],
    'onStart when it goes running, onEnd when it ends',
  );
  await journal.close();
  const text = readFileSync(journal.file, 'utf8');
  assert.ok(text.includes('"state":"interrupted"'), 'the interruption is in the journal');
});

test('stop: running jobs may finish within the grace; past it they are interrupted and queued for the next start', async () => {
  const { runner, queue, journal } = await setup(2);
  const quick = (await queue.enqueue({ repo: 'o/a', kind: 'release', tag: 'v1' })).job;
  const stuck = (await queue.enqueue({ repo: 'o/b', kind: 'release', tag: 'v1' })).job;
  await tick();
  setTimeout(() => runner.finish(quick.id), 50);
  const killedGroups: string[] = [];
  await queue.stop({
    graceMs: 300,
    killGroup: async (job) => {
      killedGroups.push(job.id);
      runner.finish(job.id, 137);
    },
  });
  assert.is(queue.get(quick.id)?.state, 'succeeded');
  assert.is(queue.get(stuck.id)?.state, 'queued');
  assert.equal(killedGroups, [stuck.id]);
  try {
    await queue.enqueue({ repo: 'o/c', kind: 'release', tag: 'v1' });
    assert.unreachable('no new jobs while stopping');
  } catch (error) {
    assert.match((error as Error).message, /shutting down/);
  }
  await journal.close();
});

test('jobArguments: the build and release command lines of the contract', () => {
  const job = { id: 'J', repo: 'o/a', kind: 'build', sha: 'S', ref: 'refs/heads/main', tag: null } as unknown as Job;
  assert.equal(jobArguments(job, '/etc/shipkit.yml'), [
    'o/a',
    '--config',
    '/etc/shipkit.yml',
    '--sha',
    'S',
    '--ref',
    'refs/heads/main',
    '--job-id',
    'J',
  ]);
  assert.equal(jobArguments({ ...job, kind: 'release', tag: 'v1' }, 'c.yml'), [
    'o/a',
    '--tag',
    'v1',
    '--config',
    'c.yml',
    '--job-id',
    'J',
  ]);
});

test('process runner: clean environment, output and status files, exit code', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, `data: ${dir}\n`);
  process.env.HOOK_SECRET_FOR_TEST = 'must-not-leak';
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir: path.join(dir, 'jobs'),
    configFile: config,
    log: silentLogger,
    commands: { build: [FAKE_BUILD], release: [FAKE_BUILD] },
    repoSettings: () => ({ timeout: 30 }),
  });
  const job = {
    id: '20260101-000000-dddddd',
    repo: 'o/envgrep',
    kind: 'build',
    sha: 'a'.repeat(40),
    ref: 'refs/heads/main',
    attempts: 1,
  } as Job;
  let pgid = 0;
  const outcome = await runner(job, {
    onSpawn: (p) => {
      pgid = p;
    },
  });
  assert.equal(outcome, { exit: 0, reason: undefined });
  assert.ok(pgid > 0);
  const env = readFileSync(path.join(dir, `env-${job.id}.txt`), 'utf8');
  assert.not.match(env, /must-not-leak/);
  const names = env
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('=')[0])
    .filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n));
  assert.equal(names.sort(), ['HOME', 'LANG', 'PATH']);
  assert.is(readFileSync(path.join(dir, 'jobs', job.id, 'status-1'), 'utf8').trim(), '0');
  assert.ok(existsSync(path.join(dir, 'jobs', job.id, 'output.log')));
  const failing = await runner({ ...job, id: '20260101-000000-eeeeee', repo: 'o/fail' }, { onSpawn() {} });
  assert.equal(failing, { exit: 3, reason: 'exited with 3' });
  delete process.env.HOOK_SECRET_FOR_TEST;
});

test('process runner: a hanging job is killed with its whole process group at the timeout', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, `data: ${dir}\n`);
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir: path.join(dir, 'jobs'),
    configFile: config,
    log: silentLogger,
    killGraceMs: 500,
    commands: { build: [FAKE_BUILD], release: [FAKE_BUILD] },
    repoSettings: () => ({ timeout: 1 }),
  });
  const job = { id: '20260101-000000-ffffff', repo: 'o/hang', kind: 'build', sha: null, ref: null, attempts: 1 } as Job;
  const started = Date.now();
  const outcome = await runner(job, { onSpawn() {} });
  assert.match(outcome.reason!, /timed out after 1 s/);
  assert.ok(Date.now() - started < 20_000);
  const sleeper = Number(readFileSync(path.join(dir, `hang-pid-${job.id}`), 'utf8'));
  await waitFor(
    () => {
      try {
        process.kill(sleeper, 0);
        return false;
      } catch {
        return true;
      }
    },
    { what: 'the sleep child to be gone' },
  );
});

test('process runner: a stopped job gets its grace to write its last lines', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, `data: ${dir}\n`);
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir: path.join(dir, 'jobs'),
    configFile: config,
    log: silentLogger,
    killGraceMs: 60_000,
    // As build does on SIGTERM: stop the running command, then write a last line and exit.
    commands: {
      build: [
        '/bin/sh',
        '-c',
        'trap \'sleep 0.5; echo "interrupted, trailer $((6 * 7)) written"; exit 143\' TERM; sleep 30 & wait',
        'x',
      ],
      release: [],
    },
    repoSettings: () => ({ timeout: 1 }),
  });
  const job = { id: '20260101-000000-acacac', repo: 'o/a', kind: 'build', sha: null, ref: null, attempts: 1 } as Job;
  const started = Date.now();
  const outcome = await runner(job, { onSpawn() {} });
  assert.match(outcome.reason!, /timed out after 1 s/);
  assert.match(
    readFileSync(path.join(dir, 'jobs', job.id, 'output.log'), 'utf8'),
    /^interrupted, trailer 42 written$/m,
    'the last line (the command line in the header does not match)',
  );
  // Not a speed figure: waiting out the whole grace would take over 61 s.
  assert.ok(Date.now() - started < 40_000, 'the runner went on once the group had ended, not after the whole grace');
});

test('trimOutput keeps the head and the tail of a long output around a mark', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'output.log');
  writeFileSync(file, `HEAD\n${'m'.repeat(1_000_000)}\nTAIL\n`);
  await trimOutput(file, 100_000);
  const text = readFileSync(file, 'utf8');
  assert.ok(text.length < 100_200);
  assert.ok(text.startsWith('HEAD\n'));
  assert.ok(text.endsWith('TAIL\n'));
  assert.match(text, /bytes of output cut by hook-server/);
  writeFileSync(file, 'short\n');
  await trimOutput(file, 100_000);
  assert.is(readFileSync(file, 'utf8'), 'short\n');
});

test('process runner: a job printing past the output cap is ended', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, `data: ${dir}\n`);
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir: path.join(dir, 'jobs'),
    configFile: config,
    log: silentLogger,
    killGraceMs: 500,
    maxOutputBytes: 1024 * 1024,
    keptOutputBytes: 64 * 1024,
    commands: { build: ['/bin/sh', '-c', 'yes runaway', 'x'], release: [] },
    repoSettings: () => ({ timeout: 60 }),
  });
  const job = { id: '20260101-000000-abcabc', repo: 'o/a', kind: 'build', sha: null, ref: null, attempts: 1 } as Job;
  const outcome = await runner(job, { onSpawn() {} });
  assert.match(outcome.reason!, /printed more than 1048576 bytes/);
  assert.ok(statSync(path.join(dir, 'jobs', job.id, 'output.log')).size < 70 * 1024);
});

test('a job whose starting helper dies while it runs ends with the code its wrapper wrote', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'shipkit.yml');
  writeFileSync(config, '');
  const runner = createProcessRunner({
    dataDir: dir,
    jobsDir: path.join(dir, 'jobs'),
    configFile: config,
    log: silentLogger,
    spawner: createSpawner({ helper: true }),
    commands: { build: ['/bin/sh', '-c', 'sleep 1; exit 5', 'x'], release: [] },
    repoSettings: () => ({ timeout: 30 }),
  });
  const job = { id: '20260101-000000-bcbcbc', repo: 'o/a', kind: 'build', sha: null, ref: null, attempts: 1 } as Job;
  let pgid = 0;
  const running = runner(job, {
    onSpawn: (p) => {
      pgid = p;
    },
  });
  await waitFor(() => pgid > 0, { what: 'the job to start' });
  // The helper is the job's parent.
  const stat = readFileSync(`/proc/${pgid}/stat`, 'latin1');
  const helper = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  assert.match(readFileSync(`/proc/${helper}/cmdline`, 'latin1'), /^[^\0]*\0-e\0/);
  process.kill(helper, 'SIGKILL');
  assert.equal(await running, { exit: 5, reason: 'exited with 5' });
});

test('removeJobFiles removes the folders of the given jobs that have one, and nothing else', async () => {
  const dir = tmpDir();
  for (const id of ['a', 'b']) {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'output.log'), 'x');
  }
  await removeJobFiles(dir, ['a', 'never-ran']);
  assert.not.ok(existsSync(path.join(dir, 'a')));
  assert.ok(existsSync(path.join(dir, 'b', 'output.log')));
  await removeJobFiles(path.join(dir, 'missing'), ['a']);
});

test.run();
