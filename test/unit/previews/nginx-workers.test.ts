// nginx-workers.ts reads process titles and parents from /proc: here from a folder laid out as
// /proc is, so each state of a reload can be set up exactly (the real nginx: nginx.test.ts).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nginxWorkers, untilOldWorkersStop } from '../../../lib/previews/nginx-workers.ts';
import { tmpDir } from '../../_helpers/common.ts';

const proc = tmpDir('shipkit-fake-proc-');

function processAt(pid: number, ppid: number, argv: string[], comm = 'nginx'): void {
  const dir = path.join(proc, String(pid));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'cmdline'), `${argv.join('\0')}\0`);
  writeFileSync(path.join(dir, 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560`);
}
const gone = (pid: number) => rmSync(path.join(proc, String(pid)), { recursive: true, force: true });
const worker = (pid: number, master: number) => processAt(pid, master, ['nginx: worker process']);

test.after(() => rmSync(proc, { recursive: true, force: true }));

test('nginxWorkers: workers by title with their master; shutting-down ones, masters and others left out', () => {
  processAt(10, 1, ['nginx: master process /usr/sbin/nginx', '-c', '/etc/nginx/nginx.conf']);
  worker(11, 10);
  processAt(12, 10, ['nginx: worker process is shutting down']);
  processAt(13, 1, ['node', 'nginx: worker process']);
  processAt(14, 10, ['nginx: worker process'], 'ng) (x'); // a comm with ") (" in it
  writeFileSync(path.join(proc, 'uptime'), '1 1');
  assert.equal([...nginxWorkers(proc)].sort(), [
    [11, 10],
    [14, 10],
  ]);
  assert.equal(nginxWorkers(path.join(proc, 'missing')).size, 0, 'no /proc: none');
  for (const pid of [10, 11, 12, 13, 14]) gone(pid);
});

test('untilOldWorkersStop: true once the reloaded master has new workers and its old ones stopped', async () => {
  processAt(20, 1, ['nginx: master process']);
  processAt(30, 1, ['nginx: master process']); // another nginx, never reloaded
  worker(21, 20);
  worker(31, 30);
  const before = nginxWorkers(proc);
  let settled: boolean | undefined;
  const waiting = untilOldWorkersStop(before, { procDir: proc, everyMs: 5, timeoutMs: 10_000 }).then((r) => {
    settled = r;
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.is(settled, undefined, 'no new worker yet: the reload has not happened');
  worker(22, 20); // new worker started; the old one still accepts (nginx's 100 ms)
  await new Promise((r) => setTimeout(r, 50));
  assert.is(settled, undefined, 'the old worker still takes connections');
  processAt(21, 20, ['nginx: worker process is shutting down']);
  await waiting;
  assert.is(settled, true, 'the other nginx (30) is not waited for');
  for (const pid of [20, 21, 22, 30, 31]) gone(pid);
});

test('untilOldWorkersStop: false after the time when no master restarts workers, at once when none was seen', async () => {
  processAt(40, 1, ['nginx: master process']);
  worker(41, 40);
  assert.is(await untilOldWorkersStop(nginxWorkers(proc), { procDir: proc, everyMs: 5, timeoutMs: 60 }), false);
  assert.is(await untilOldWorkersStop(new Map(), { procDir: proc, timeoutMs: 60_000 }), false, 'nothing to wait for');
  for (const pid of [40, 41]) gone(pid);
});

test.run();
