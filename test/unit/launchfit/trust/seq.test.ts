// judgeSeq: the host's SEQ rule (docs/design.md), table-driven. End to end: test/e2e/release/rollback.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { judgeSeq } from '../../../../lib/launchfit/trust/seq.ts';

const FILE = 'my-app-gnu-linux-1.1.tar.gz';
const info = (seq?: number, file = FILE) => ({ version: '1.1', file, seq });
const last = (seq: number, file = FILE) => ({ seq: { seq, file, at: '2026-01-01T00:00:00Z' } });

test('judgeSeq', () => {
  const cases: Array<[string, ReturnType<typeof judgeSeq>, boolean | RegExp]> = [
    ['first VERSION, no SEQ', judgeSeq({}, info(), true), false],
    ['first SEQ: accepted, but cannot lower the version', judgeSeq({}, info(7), true), false],
    ['higher SEQ: may go back', judgeSeq(last(7), info(8), true), true],
    ['same SEQ, same file: re-polled', judgeSeq(last(7), info(7), true), false],
    [
      'same SEQ, other file',
      judgeSeq(last(7, 'my-app-gnu-linux-1.0.tar.gz'), info(7), true),
      /SEQ 7, which this host already accepted for my-app-gnu-linux-1\.0\.tar\.gz, but names my-app-gnu-linux-1\.1\.tar\.gz/,
    ],
    [
      'lower SEQ',
      judgeSeq(last(7), info(6), true),
      /SEQ 6, lower than SEQ 7 this host accepted; refusing a replayed or lowered VERSION/,
    ],
    ['no SEQ after one', judgeSeq(last(7), info(), true), /no SEQ line, but this host accepted SEQ 7 before/],
    ["an unsigned VERSION's SEQ does not count", judgeSeq(last(7), info(9), false), /no signed SEQ line/],
  ];
  for (const [what, verdict, expected] of cases) {
    if (expected instanceof RegExp) {
      assert.is(verdict.ok, false, what);
      assert.match((verdict as { message: string }).message, expected, what);
    } else {
      assert.equal(verdict, { ok: true, downgradeAllowed: expected }, what);
    }
  }
});

test.run();
