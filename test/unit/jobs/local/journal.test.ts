import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newJobId, JOB_ID_PATTERN } from '../../../../lib/jobs/job-id.ts';
import { encodeRecord, journalFile, openJournal, replayJournal } from '../../../../lib/jobs/local/journal.ts';
import { type Job } from '../../../../lib/jobs/job.ts';
import { mountTinyDisk, skipFullDisk } from '../../../_helpers/disk.ts';
import { tmpDir } from '../../../_helpers/common.ts';

let seq = 0;
function job(fields: Partial<Job> = {}): Job {
  seq++;
  return {
    id: newJobId(),
    seq,
    repo: 'octo/site',
    kind: 'build',
    sha: 'a'.repeat(40),
    ref: 'refs/heads/main',
    branch: 'main',
    tag: null,
    cloneUrl: null,
    deliveryId: `d-${seq}`,
    forge: 'github',
    state: 'queued',
    exit: null,
    queued: new Date().toISOString(),
    started: null,
    finished: null,
    reason: null,
    attempts: 0,
    interruptions: 0,
    pgid: null,
    ...fields,
  };
}

test('job ids are sortable and unique', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newJobId(new Date('2026-11-21T13:30:00Z'))));
  assert.is(ids.size, 1000);
  for (const id of ids) assert.match(id, JOB_ID_PATTERN);
  assert.ok([...ids][0].startsWith('20261121-133000-'));
});

test('writes are on disk when write() resolves and read back after reopening; last record wins', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const a = job();
  await journal.write([a]);
  assert.ok(readFileSync(journalFile(dir), 'utf8').includes(a.id));
  a.state = 'running';
  await journal.write([a]);
  a.state = 'succeeded';
  a.exit = 0;
  await journal.write([a]);
  await journal.close();
  const again = await openJournal(dir);
  assert.is(again.jobs.get(a.id)?.state, 'succeeded');
  assert.is(again.jobs.get(a.id)?.exit, 0);
  assert.is(again.lastSeq, a.seq);
  await again.close();
});

test('group commit: 500 concurrent writes take far fewer flushes than writes', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const jobs = Array.from({ length: 500 }, () => job());
  await Promise.all(jobs.map((j) => journal.write([j])));
  const stats = journal.stats();
  assert.is(stats.records, 500);
  assert.ok(stats.flushes < 100, `flushes: ${stats.flushes}`);
  await journal.close();
  const again = await openJournal(dir);
  assert.is(again.jobs.size, 500);
  await again.close();
});

test('a torn last line (crash mid-write) is cut off; the records before it survive', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const a = job();
  await journal.write([a]);
  await journal.close();
  const torn = encodeRecord(job());
  appendFileSync(journalFile(dir), torn.slice(0, torn.length / 2));
  const again = await openJournal(dir);
  assert.is(again.damaged, 1);
  assert.equal([...again.jobs.keys()], [a.id]);
  const b = job();
  await again.write([b]);
  await again.close();
  const third = await openJournal(dir);
  assert.is(third.damaged, 0);
  assert.equal([...third.jobs.keys()].sort(), [a.id, b.id].sort());
  await third.close();
});

test('a line whose checksum does not match is dropped, not trusted', () => {
  const a = job();
  const good = encodeRecord(a);
  const forged = good.replace('"queued"', '"succeeded"');
  const result = replayJournal(good + forged + encodeRecord({ ...a, seq: a.seq }));
  assert.is(result.damaged, 1);
  assert.is(result.jobs.get(a.id)?.state, 'queued');
  assert.is(replayJournal('garbage\n\n').damaged, 1);
});

test('compaction keeps unfinished jobs and the newest finished ones, through temp + rename', async () => {
  const dir = tmpDir();
  const pruned: string[] = [];
  const journal = await openJournal(dir, {
    compactBytes: 20_000,
    keepFinished: 10,
    onPrune: (ids) => pruned.push(...ids),
  });
  const queued = job();
  await journal.write([queued]);
  const finished: Job[] = [];
  for (let i = 0; i < 100; i++) {
    const j = job({ state: 'succeeded', exit: 0 });
    finished.push(j);
    await journal.write([j]);
  }
  const stats = journal.stats();
  assert.ok(stats.compactions >= 1, 'compacted');
  assert.ok(stats.bytes < 20_000);
  assert.ok(journal.jobs.has(queued.id));
  assert.ok(journal.jobs.has(finished[99].id));
  assert.not.ok(journal.jobs.has(finished[0].id));
  assert.ok(pruned.includes(finished[0].id));
  await journal.close();
  const again = await openJournal(dir);
  assert.ok(again.jobs.has(queued.id));
  assert.ok(again.jobs.size <= 11 + 10);
  await again.close();
});

test('a compaction that fails does not stall the journal: later writes still reach the disk', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir, {
    compactBytes: 5_000,
    keepFinished: 1,
    onPrune: () => {
      throw new Error('prune failed');
    },
  });
  const written: Job[] = [];
  for (let i = 0; i < 40; i++) {
    const j = job({ state: 'succeeded', exit: 0 });
    written.push(j);
    const settled = await Promise.race([
      journal.write([j]).then(() => 'written'),
      new Promise((r) => setTimeout(() => r('stalled'), 5_000)),
    ]);
    assert.is(settled, 'written', `write ${i}`);
  }
  await journal.close();
  const again = await openJournal(dir);
  assert.ok(again.jobs.has(written[39].id));
  await again.close();
});

test('a journal made mostly of stale records is compacted on open', async () => {
  const dir = tmpDir();
  const a = job();
  const lines = Array.from({ length: 300 }, (_, i) => encodeRecord({ ...a, attempts: i })).join('');
  const file = journalFile(dir);
  const journal = await openJournal(dir);
  await journal.close();
  writeFileSync(file, lines);
  const again = await openJournal(dir);
  assert.is(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 1);
  assert.is(again.jobs.get(a.id)?.attempts, 299);
  await again.close();
  assert.ok(path.basename(file).endsWith('.journal'));
});

test('records handed out are frozen, and a change is in memory only once it is on disk', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const a = job();
  const added = await journal.add(a);
  assert.throws(() => {
    (added as Job).state = 'failed';
  });
  assert.is(journal.jobs.get(a.id)?.state, 'queued');
  const running = journal.markRunning(a.id, '2026-01-01T00:00:00.000Z');
  assert.is(journal.jobs.get(a.id)?.state, 'queued', 'not before the record is written');
  assert.is((await running).attempts, 1);
  await journal.recordGroup(a.id, 4242);
  const b = job();
  await journal.add(b);
  const c = job();
  await journal.add(c, [b.id]);
  assert.is(journal.jobs.get(b.id)?.state, 'superseded');
  assert.is(journal.jobs.get(b.id)?.reason, `superseded by ${c.id}`);
  await journal.finish(a.id, { state: 'failed', exit: 2, reason: 'exited with 2' });
  await journal.markRunning(c.id);
  await journal.interrupt(c.id, { reason: 'hook-server stopped while it ran', requeue: true });
  await journal.close();
  const again = await openJournal(dir);
  assert.equal(
    { ...again.jobs.get(a.id) },
    {
      ...a,
      state: 'failed',
      exit: 2,
      reason: 'exited with 2',
      started: '2026-01-01T00:00:00.000Z',
      attempts: 1,
      pgid: null,
      finished: again.jobs.get(a.id)!.finished,
    },
  );
  assert.is(again.jobs.get(c.id)?.state, 'queued');
  assert.is(again.jobs.get(c.id)?.interruptions, 1);
  await again.close();
});

test('full disk (real tmpfs): a write that fails leaves no partial record; the next acknowledged one reads back after a restart', async () => {
  const disk = mountTinyDisk('1m');
  if (typeof disk === 'string') return skipFullDisk('journal full-disk test', disk);
  const journal = await openJournal(disk.dir);
  const acknowledged: Job[] = [];
  // Large records, so that the disk never happens to be full exactly at a record's end.
  const big = () => job({ reason: 'r'.repeat(1500 + Math.floor(Math.random() * 500)) });
  for (let i = 0; i < 3; i++) {
    const j = big();
    await journal.add(j);
    acknowledged.push(j);
  }
  disk.fill();
  let failed: Job | undefined;
  let error: NodeJS.ErrnoException | undefined;
  for (let i = 0; i < 50 && !failed; i++) {
    const j = big();
    try {
      await journal.add(j);
      acknowledged.push(j);
    } catch (e) {
      failed = j;
      error = e as NodeJS.ErrnoException;
    }
  }
  assert.ok(failed, 'a write failed on the full disk');
  assert.is(error?.code, 'ENOSPC');
  assert.not.ok(journal.jobs.has(failed!.id), 'a record that is not on disk is not in memory either');
  // Cutting the failed record back freed the bytes it had half-written: fill them again, or a
  // smaller record could fit there and this would not be a full disk any more. tmpfs counts
  // whole pages, so the journal's own last page may still take a record or two: change the
  // acknowledged jobs one after another until a change finds no room.
  disk.fill();
  const running = new Set<string>();
  let queued: Job | undefined;
  for (const j of acknowledged) {
    try {
      await journal.markRunning(j.id);
      running.add(j.id);
    } catch (e) {
      assert.is((e as NodeJS.ErrnoException).code, 'ENOSPC');
      queued = j;
      break;
    }
  }
  assert.ok(queued, `a running record could not be written on a full disk (${running.size} fitted in the last page)`);
  assert.is(journal.jobs.get(queued!.id)?.state, 'queued', 'a change that could not be written changed nothing');
  disk.free();
  const after = big();
  await journal.add(after);
  acknowledged.push(after);
  await journal.close();
  const again = await openJournal(disk.dir);
  assert.is(again.damaged, 0, 'no damaged record on replay');
  for (const j of acknowledged) assert.ok(again.jobs.has(j.id), `acknowledged job ${j.id} is in the journal`);
  assert.not.ok(again.jobs.has(failed!.id));
  assert.is(again.jobs.get(queued!.id)?.state, 'queued');
  for (const id of running)
    assert.is(again.jobs.get(id)?.state, 'running', `the change of ${id} that was acknowledged is kept`);
  await again.close();
});

test('group commit: each write is in the file when it resolves, and records land in the order they were written', async () => {
  const dir = tmpDir();
  const journal = await openJournal(dir);
  const jobs = Array.from({ length: 300 }, () => job());
  const missing: string[] = [];
  // Resolved writes read the file at once: none may be acknowledged before its bytes are there.
  await Promise.all(
    jobs.map((j) =>
      journal.write([j]).then(() => {
        if (!readFileSync(journalFile(dir), 'utf8').includes(j.id)) missing.push(j.id);
      }),
    ),
  );
  assert.equal(missing, [], 'acknowledged before it was in the file');
  assert.ok(journal.stats().flushes < jobs.length, 'the writes shared flushes');
  const ids = readFileSync(journalFile(dir), 'utf8')
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line.slice(9)) as Job).id);
  assert.equal(
    ids,
    jobs.map((j) => j.id),
    'file order is write order',
  );
  await journal.close();
});

test('group commit on a full disk (real tmpfs): every write of the failed group is refused, none is in memory or on disk', async () => {
  const disk = mountTinyDisk('1m');
  if (typeof disk === 'string') return skipFullDisk('journal group full-disk test', disk);
  const journal = await openJournal(disk.dir);
  const first = job();
  await journal.add(first);
  disk.fill();
  const group = Array.from({ length: 20 }, () => job({ reason: 'r'.repeat(2000) }));
  const outcomes = await Promise.allSettled(group.map((j) => journal.add(j)));
  const refused = group.filter((_, i) => outcomes[i].status === 'rejected');
  assert.ok(refused.length > 0, 'writes failed on the full disk');
  for (const j of refused) assert.not.ok(journal.jobs.has(j.id), 'a refused record is not in memory');
  for (const o of outcomes) if (o.status === 'rejected') assert.is((o.reason as NodeJS.ErrnoException).code, 'ENOSPC');
  const accepted = group.filter((_, i) => outcomes[i].status === 'fulfilled');
  disk.free();
  await journal.close();
  const again = await openJournal(disk.dir);
  assert.is(again.damaged, 0, 'no partial record');
  assert.ok(again.jobs.has(first.id));
  for (const j of accepted) assert.ok(again.jobs.has(j.id), 'an acknowledged record is on disk');
  for (const j of refused) assert.not.ok(again.jobs.has(j.id), 'a refused record is not on disk');
  await again.close();
});

test.run();
