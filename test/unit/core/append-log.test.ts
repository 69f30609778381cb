// The append-only log under the job journal and the fleet registry (lib/core/append-log.ts):
// records reach their owner only once they are in the file, writes that arrive together share a
// flush, a torn or altered line is dropped on replay and the file rewritten, the owner decides
// when to rewrite and learns when it is done, and a closed log refuses. (A full disk, on a real
// tmpfs, is tested through both users: test/unit/jobs/local/journal.test.ts, fleet-store.test.ts.)
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AppendLog,
  encodeLine,
  replayLines,
  type AppendLogOwner,
  type AppendLogStats,
} from '../../../lib/core/append-log.ts';
import { tmpDir } from '../../_helpers/common.ts';

interface Rec {
  n: number;
}
const decode = (value: unknown) => (typeof (value as Rec)?.n === 'number' ? (value as Rec) : undefined);

class Owner implements AppendLogOwner<Rec> {
  seen: number[] = [];
  compactAt = Infinity;
  rewrites = 0;
  apply(records: readonly Rec[]): void {
    for (const r of records) this.seen.push(r.n);
  }
  wantsCompaction(stats: AppendLogStats): boolean {
    return stats.records >= this.compactAt;
  }
  live(): { records: Rec[]; done: () => void } {
    return { records: [{ n: Math.max(...this.seen) }], done: () => this.rewrites++ };
  }
}

const open = (file: string, owner: Owner) => AppendLog.open(file, owner, { decode, mode: 0o600, dirMode: 0o700 });

test('a record reaches its owner once it is in the file; writes that arrive together share a flush', async () => {
  const file = path.join(tmpDir(), 'sub', 'a.log');
  const owner = new Owner();
  const log = await open(file, owner);
  const early: number[] = [];
  await Promise.all(
    Array.from({ length: 100 }, (_, n) =>
      log.append([{ n }]).then(() => {
        if (!readFileSync(file, 'utf8').includes(`{"n":${n}}`)) early.push(n);
      }),
    ),
  );
  assert.equal(early, [], 'resolved before the record was in the file');
  assert.equal(
    [...owner.seen].sort((a, b) => a - b),
    Array.from({ length: 100 }, (_, n) => n),
  );
  const stats = log.stats();
  assert.is(stats.records, 100);
  assert.ok(stats.flushes < 100, `writes shared flushes (${stats.flushes} for 100)`);
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(statSync(path.dirname(file)).mode & 0o777, 0o700);
  await log.close();
  const refused = await log.append([{ n: 1 }]).then(
    () => undefined,
    (error: Error) => error.message,
  );
  assert.is(refused, 'a.log is closed');
  const again = new Owner();
  await (await open(file, again)).close();
  assert.is(again.seen.length, 100, 'every acknowledged record is read back');
});

test('replay: a torn last line and an altered line are dropped, blank lines are not damage, and the file is rewritten clean', async () => {
  const text =
    encodeLine({ n: 1 }) +
    '\n' +
    encodeLine({ n: 2 }).replace('"n":2', '"n":3') +
    encodeLine({ x: 1 }) +
    encodeLine({ n: 4 }) +
    encodeLine({ n: 5 }).slice(0, 10);
  const replay = replayLines(text, decode);
  assert.equal(replay.records, [{ n: 1 }, { n: 4 }]);
  assert.is(replay.damaged, 3, 'the altered line, the line that is not a record, the torn tail');
  assert.is(replay.goodBytes, Buffer.byteLength(text) - 10);

  const file = path.join(tmpDir(), 'b.log');
  writeFileSync(file, text);
  const owner = new Owner();
  const log = await open(file, owner);
  assert.is(log.damaged, 3);
  assert.equal(owner.seen, [1, 4]);
  assert.is(owner.rewrites, 1, "damage makes the log rewrite itself with the owner's live records");
  assert.is(readFileSync(file, 'utf8'), encodeLine({ n: 4 }));
  await log.append([{ n: 6 }]);
  await log.close();
  assert.is(readFileSync(file, 'utf8'), encodeLine({ n: 4 }) + encodeLine({ n: 6 }));
});

test('the owner decides when to rewrite; what was appended meanwhile is kept, and pending records are visible', async () => {
  const file = path.join(tmpDir(), 'c.log');
  const owner = new Owner();
  owner.compactAt = 10;
  const log = await open(file, owner);
  const writes = Array.from({ length: 9 }, (_, n) => log.append([{ n }]));
  // The first went to the disk at once; the rest wait for the next flush together.
  assert.equal(
    log.pendingRecords().map((r) => r.n),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  await Promise.all(writes);
  assert.is(owner.rewrites, 0);
  // The tenth is acknowledged, then the file rewritten; the eleventh waits for the rewrite.
  await log.append([{ n: 9 }]);
  await log.append([{ n: 10 }]);
  assert.is(owner.rewrites, 1);
  assert.is(log.stats().records, 2);
  assert.is(log.stats().compactions, 1);
  await log.close();
  assert.is(readFileSync(file, 'utf8'), encodeLine({ n: 9 }) + encodeLine({ n: 10 }));
  appendFileSync(file, '\n');
  const again = new Owner();
  const reopened = await open(file, again);
  assert.is(reopened.damaged, 0);
  assert.equal(again.seen, [9, 10]);
  await reopened.close();
});

test('replay of 20,000 lines: every record in order, the damage counted, and goodBytes a byte offset in the file', async () => {
  // Multi-byte text in every record: goodBytes counts bytes, not characters. Timing is for
  // bench/replay.ts (F12: replay was quadratic); this checks the result at that size.
  const lines: string[] = [];
  const expected: Rec[] = [];
  for (let n = 0; n < 20_000; n++) {
    if (n % 1000 === 999)
      lines.push(encodeLine({ n, s: 'é' }).replace('é', 'è')); // altered: dropped
    else if (n % 2500 === 0) lines.push('\n');
    else {
      const record = { n, s: `héllo ${n} €${'✓'.repeat(n % 7)} 🚀` };
      lines.push(encodeLine(record));
      expected.push(record);
    }
  }
  const whole = lines.join('');
  const torn = encodeLine({ n: 20_000, s: '€€€' }).slice(0, 25);
  const replay = replayLines(whole + torn, decode);
  assert.is(replay.records.length, expected.length);
  assert.equal(replay.records, expected);
  assert.is(replay.damaged, 20 + 1, 'the altered lines and the torn tail');
  assert.is(replay.goodBytes, Buffer.byteLength(whole));

  // Through the log, undamaged (so not rewritten): appends are counted from the replayed offset.
  const file = path.join(tmpDir(), 'd.log');
  writeFileSync(file, lines.filter((line) => !line.includes('è')).join(''));
  const owner = new Owner();
  const log = await open(file, owner);
  assert.is(log.damaged, 0);
  assert.is(owner.rewrites, 0);
  assert.equal(
    owner.seen,
    expected.map((r) => r.n),
  );
  assert.is(log.stats().bytes, statSync(file).size);
  await log.append([{ n: 20_001 }]);
  assert.is(log.stats().bytes, statSync(file).size);
  await log.close();
  const again = new Owner();
  await (await open(file, again)).close();
  assert.is(again.seen.length, expected.length + 1, 'the append landed after the last replayed line');
});

test.run();
