import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSpawner, type JobSpawn, type Spawner } from '../../../../lib/jobs/process/spawner.ts';
import { ROOT, tmpDir, waitFor } from '../../../_helpers/common.ts';

const kinds: Array<[string, Spawner]> = [
  ['helper process', createSpawner({ helper: true })],
  ['in-process', createSpawner({ helper: false })],
];

function request(dir: string, script: string, extra: Partial<JobSpawn> = {}): JobSpawn {
  return {
    file: '/bin/sh',
    args: ['-c', script],
    cwd: dir,
    env: { PATH: '/usr/bin:/bin', ONLY: 'this' },
    output: path.join(dir, 'output.log'),
    header: '# header\n',
    ...extra,
  };
}

/** `pid (comm) state ppid pgrp …` */
function groupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** The helper processes this test process started (node -e …). */
function helpers(): number[] {
  const children = readdirSync(`/proc/${process.pid}/task`).flatMap((t) =>
    readFileSync(`/proc/${process.pid}/task/${t}/children`, 'latin1').split(' ').filter(Boolean),
  );
  return children.map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[1] === '-e';
    } catch {
      return false;
    }
  });
}

for (const [kind, spawner] of kinds) {
  test(`${kind}: output after the header, exit code, cwd and only the given environment`, async () => {
    const dir = tmpDir();
    const job = await spawner.start(
      request(dir, 'echo out; echo err >&2; pwd; echo "ONLY=$ONLY HOME=${HOME-unset}"; exit 3'),
    );
    assert.ok(job.pid && job.pid > 1);
    const exit = await job.exited;
    assert.equal(exit, { code: 3, signal: null });
    assert.is(readFileSync(path.join(dir, 'output.log'), 'utf8'), `# header\nout\nerr\n${dir}\nONLY=this HOME=unset\n`);
    assert.is(statSync(path.join(dir, 'output.log')).mode & 0o777, 0o640);
  });

  test(`${kind}: appends to an existing output; its own process group; ended by a signal to the group`, async () => {
    const dir = tmpDir();
    writeFileSync(path.join(dir, 'output.log'), 'attempt 1\n');
    const job = await spawner.start(request(dir, 'sleep 30'));
    assert.is(groupOf(job.pid!), job.pid, 'the job leads its own group');
    process.kill(-job.pid!, 'SIGTERM');
    assert.equal(await job.exited, { code: null, signal: 'SIGTERM' });
    assert.is(readFileSync(path.join(dir, 'output.log'), 'utf8'), 'attempt 1\n# header\n');
  });

  test(`${kind}: a command that cannot start has no pid and says why`, async () => {
    const dir = tmpDir();
    const job = await spawner.start(request(dir, '', { file: path.join(dir, 'no-such-command'), args: [] }));
    assert.is(job.pid, undefined);
    const exit = await job.exited;
    assert.is(exit.code, null);
    assert.match(exit.error?.message ?? '', /ENOENT/);
  });

  test(`${kind}: an output file that cannot be opened rejects with its code, and nothing runs`, async () => {
    const dir = tmpDir();
    const marker = path.join(dir, 'ran');
    const error = await spawner
      .start(request(dir, `touch ${marker}`, { output: path.join(dir, 'missing', 'output.log') }))
      .then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
    assert.ok(error, 'rejected');
    assert.is(error!.code, 'ENOENT');
    await new Promise((r) => setTimeout(r, 200));
    assert.not.ok(existsSync(marker), 'the command did not run');
  });

  test(`${kind}: many at once, each its own answer`, async () => {
    const dir = tmpDir();
    const jobs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        spawner.start(request(dir, `exit ${i}`, { output: path.join(dir, `out-${i}.log`), header: `# ${i}\n` })),
      ),
    );
    assert.is(new Set(jobs.map((j) => j.pid)).size, 20);
    const exits = await Promise.all(jobs.map((j) => j.exited));
    assert.equal(
      exits.map((e) => e.code),
      Array.from({ length: 20 }, (_, i) => i),
    );
    for (let i = 0; i < 20; i++) assert.is(readFileSync(path.join(dir, `out-${i}.log`), 'utf8'), `# ${i}\n`);
  });
}

test('helper process: killed while a job runs, the job is watched to its end (lost), and the next job starts a new helper', async () => {
  const spawner = createSpawner({ helper: true });
  const dir = tmpDir();
  const before = helpers();
  const job = await spawner.start(request(dir, 'sleep 1; exit 0'));
  const [helper] = helpers().filter((pid) => !before.includes(pid));
  assert.ok(helper, 'a helper runs');
  process.kill(helper, 'SIGKILL');
  const exit = await job.exited;
  assert.equal(exit, { code: null, signal: null, lost: true });
  const next = await spawner.start(request(dir, 'exit 4'));
  assert.is((await next.exited).code, 4);
  assert.not.ok(helpers().includes(helper));
});

test('helper process: an idle helper does not keep its parent alive, and it ends with it', async () => {
  const dir = tmpDir();
  const script = path.join(dir, 'parent.mts');
  writeFileSync(
    script,
    `import { readdirSync, readFileSync } from 'node:fs';
import { createSpawner } from ${JSON.stringify(path.join(ROOT, 'lib/jobs/process/spawner.ts'))};
const job = await createSpawner({ helper: true }).start({ file: '/bin/sh', args: ['-c', 'exit 0'], cwd: ${JSON.stringify(dir)}, env: {}, output: ${JSON.stringify(path.join(dir, 'out.log'))}, header: '' });
const children = readdirSync('/proc/' + process.pid + '/task').flatMap((t) => readFileSync('/proc/' + process.pid + '/task/' + t + '/children', 'latin1').split(' ').filter(Boolean));
console.log(children.filter((pid) => readFileSync('/proc/' + pid + '/cmdline', 'latin1').split('\\0')[1] === '-e').join(','), (await job.exited).code);
`,
  );
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.is(run.status, 0, run.stderr);
  const [helper, code] = run.stdout.trim().split(' ');
  assert.match(helper, /^\d+$/, 'the parent saw its helper');
  assert.is(code, '0');
  // Its stdin ended with the parent: it exits (a zombie of a PID 1 that reaps late counts as gone).
  await waitFor(
    () => {
      try {
        return readFileSync(`/proc/${helper}/stat`, 'latin1').split(') ')[1].startsWith('Z');
      } catch {
        return true;
      }
    },
    { what: `helper ${helper} gone` },
  );
});

test.run();
