// @deno
// release rollout's judgement of a step, table-driven: which hosts a step expects (real
// rolloutBucket over real host ids), what their reports count as, and when it goes on, waits or halts.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rolloutBucket } from '../../../../lib/release/format/bucket.ts';
import {
  countStep,
  exceeds,
  formatCounts,
  judgeStep,
  parseAllowance,
  parseSteps,
  type FleetHost,
} from '../../../../lib/release/rollout/plan.ts';

const V = '1.2.0';

/** A host id whose real bucket for V is inside [lo, hi). */
function hostIn(lo: number, hi: number): string {
  for (;;) {
    const id = randomBytes(16).toString('hex');
    const b = rolloutBucket(id, V);
    if (b >= lo && b < hi) return id;
  }
}

test('parseSteps: growing percents ending at 100; anything else is refused with the reason', () => {
  assert.equal(parseSteps('1,10,50,100'), [1, 10, 50, 100]);
  assert.equal(parseSteps('0.5, 5,100'), [0.5, 5, 100]);
  assert.equal(parseSteps('100'), [100]);
  const bad: Array<[string, RegExp]> = [
    ['0,10,100', /must be above 0/],
    ['1,101', /at most 100/],
    ['1,abc,100', /must be a percent/],
    ['10,5,100', /must grow: 5 follows 10/],
    ['10,10,100', /must grow/],
    ['1,10,50', /must end at 100.*e\.g\. 1,10,50,100/],
    ['', /must be a percent/],
    ['1,,100', /must be a percent/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseSteps(text), message, text);
});

test("parseAllowance and exceeds: a count of hosts or a percent of the step's hosts", () => {
  assert.equal(parseAllowance('3', '--max-failures'), { count: 3 });
  assert.equal(parseAllowance('5%', '--max-failures'), { percent: 5 });
  assert.equal(parseAllowance('0.5%', '--allow-missing'), { percent: 0.5 });
  for (const bad of ['-1', '101%', 'x', '5 %', '1e3', ''])
    assert.throws(() => parseAllowance(bad, '--max-failures'), /Invalid --max-failures/, bad);
  const table: Array<[number, number, string, boolean]> = [
    [0, 10, '0', false],
    [1, 10, '0', true],
    [2, 10, '2', false],
    [3, 10, '2', true],
    [1, 10, '10%', false],
    [2, 10, '10%', true],
    [1, 200, '1%', false],
    [3, 200, '1%', true],
    [0, 0, '0%', false],
    [1, 3, '50%', false],
    [2, 3, '50%', true],
  ];
  for (const [n, of, allowance, over] of table)
    assert.is(exceeds(n, of, parseAllowance(allowance, 'x')), over, `${n} of ${of} vs ${allowance}`);
});

test('countStep: expected = real bucket below the step; reports for this version only; failures name their hosts', () => {
  const inA = hostIn(0, 5); // in at 5 %
  const inB = hostIn(0, 5);
  const inC = hostIn(0, 5);
  const inD = hostIn(0, 5);
  const later = hostIn(50, 100); // only at 100 %
  const hosts: FleetHost[] = [
    { host: inA, version: V, result: 'updated' },
    { host: inB, version: V, result: 'rolled_back', reason: 'health check failed' },
    { host: inC, version: '1.1.0', result: 'running' }, // still on the old one: pending
    { host: inD, version: V, result: 'running' }, // started on this version: updated
    { host: later, version: '1.1.0', result: 'running' },
    { host: 'not-a-host-id', version: V, result: 'updated' },
  ];
  const at5 = countStep(hosts, V, 5);
  assert.equal(
    { ...at5, failures: undefined },
    {
      percent: 5,
      expected: 4,
      reported: 3,
      updated: 2,
      failed: 1,
      pending: 1,
      claimed: 0,
      forged: 0,
      failures: undefined,
    },
  );
  assert.equal(at5.failures, [{ host: inB, result: 'rolled_back', reason: 'health check failed' }]);
  const at100 = countStep(hosts, V, 100);
  assert.is(at100.expected, 5);
  assert.is(at100.pending, 2);
  assert.equal(countStep([], V, 100).expected, 0);
});

test('countStep: a host lying about its bucket is shown where it claims but does not stand in for an expected one', () => {
  const expected = hostIn(0, 10);
  const liar = hostIn(60, 100);
  const hosts: FleetHost[] = [
    { host: expected, version: '1.1.0', result: 'running' }, // not yet on V
    { host: liar, version: V, result: 'updated', claimed_bucket: 1.5 },
  ];
  const c = countStep(hosts, V, 10);
  assert.is(c.expected, 1);
  assert.is(c.pending, 1, 'the expected host is still pending');
  assert.is(c.claimed, 1);
  assert.is(c.updated, 0);
  assert.equal(judgeStep(c, { maxFailures: { count: 0 }, allowMissing: { count: 0 } }, false), {
    go: false,
    wait: true,
  });
  // A host that claims a bucket in the step but failed does not halt the rollout either.
  const lyingFailure = countStep([{ host: liar, version: V, result: 'failed', claimed_bucket: 0.1 }], V, 10);
  assert.is(lyingFailure.failed, 0);
  // An expected host lying upwards is still expected.
  const low = hostIn(0, 10);
  assert.is(countStep([{ host: low, version: V, result: 'updated', claimed_bucket: 99 }], V, 10).updated, 1);
});

test("a report with a SEQ above the step's is no answer to it (F06/F08/F09): pending, shown as forged", () => {
  const a = hostIn(0, 10);
  const b = hostIn(0, 10);
  const hosts: FleetHost[] = [
    { host: a, version: V, result: 'updated', seq: 2 ** 53 - 1 },
    { host: b, version: V, result: 'failed', seq: 12, reason: 'forged' },
  ];
  const c = countStep(hosts, V, 10, { stepSeq: 11 });
  assert.is(c.expected, 2);
  assert.is(c.updated, 0);
  assert.is(c.failed, 0, 'a forged failure cannot halt or roll back the rollout');
  assert.is(c.forged, 2);
  assert.is(c.pending, 2);
  assert.match(formatCounts(c), /2 with a SEQ above this step's/);
  const honest = countStep(
    [
      { host: a, version: V, result: 'updated', seq: 10 },
      { host: b, version: V, result: 'failed', seq: 11 },
    ],
    V,
    10,
    { stepSeq: 11 },
  );
  assert.is(honest.updated, 1, 'a SEQ of an earlier step of the same version counts');
  assert.is(honest.failed, 1);
  assert.is(honest.forged, 0);
});

test('judgeStep: go, wait, or halt, for failures and missing hosts', () => {
  const base = {
    percent: 10,
    expected: 10,
    reported: 10,
    updated: 10,
    failed: 0,
    pending: 0,
    claimed: 0,
    forged: 0,
    failures: [] as Array<{ host: string; result: string; reason: string }>,
  };
  const failure = { host: 'a'.repeat(32), result: 'failed', reason: 'exit 3' };
  const table: Array<{
    name: string;
    counts: Partial<typeof base>;
    max: string;
    missing: string;
    over: boolean;
    verdict: 'go' | 'wait' | RegExp;
  }> = [
    { name: 'all updated', counts: {}, max: '0', missing: '0', over: false, verdict: 'go' },
    {
      name: 'one failure, none allowed, halts at once',
      counts: { updated: 9, failed: 1, failures: [failure] },
      max: '0',
      missing: '0',
      over: false,
      verdict: /1 of 10 hosts failed at 10%, more than --max-failures 0: aaaaaaaaaaaa failed \(exit 3\)/,
    },
    {
      name: 'one failure, 1 allowed',
      counts: { updated: 9, failed: 1 },
      max: '1',
      missing: '0',
      over: false,
      verdict: 'go',
    },
    {
      name: 'two failures of 10 over 10%',
      counts: { updated: 8, failed: 2 },
      max: '10%',
      missing: '0',
      over: false,
      verdict: /2 of 10 .*--max-failures 10%/,
    },
    {
      name: 'one failure of 10 within 10%',
      counts: { updated: 9, failed: 1 },
      max: '10%',
      missing: '0',
      over: false,
      verdict: 'go',
    },
    {
      name: 'pending before --wait: wait',
      counts: { reported: 7, updated: 7, pending: 3 },
      max: '0',
      missing: '0',
      over: false,
      verdict: 'wait',
    },
    {
      name: 'pending after --wait: halt',
      counts: { reported: 7, updated: 7, pending: 3 },
      max: '0',
      missing: '0',
      over: true,
      verdict: /3 of 10 hosts did not report 10% within --wait, more than --allow-missing 0/,
    },
    {
      name: 'pending after --wait within --allow-missing 30%',
      counts: { reported: 7, updated: 7, pending: 3 },
      max: '0',
      missing: '30%',
      over: true,
      verdict: 'go',
    },
    {
      name: 'pending after --wait over --allow-missing 20%',
      counts: { reported: 7, updated: 7, pending: 3 },
      max: '0',
      missing: '20%',
      over: true,
      verdict: /--allow-missing 20%/,
    },
    {
      name: 'pending within --allow-missing 3 hosts',
      counts: { reported: 7, updated: 7, pending: 3 },
      max: '0',
      missing: '3',
      over: true,
      verdict: 'go',
    },
    {
      name: 'failures halt even while others are pending',
      counts: { reported: 2, updated: 1, failed: 1, pending: 8 },
      max: '0',
      missing: '100%',
      over: false,
      verdict: /failed at 10%/,
    },
    {
      name: 'no host in the step yet: go',
      counts: { expected: 0, reported: 0, updated: 0 },
      max: '0',
      missing: '0',
      over: false,
      verdict: 'go',
    },
  ];
  for (const row of table) {
    const verdict = judgeStep(
      { ...base, ...row.counts },
      { maxFailures: parseAllowance(row.max, 'm'), allowMissing: parseAllowance(row.missing, 'a') },
      row.over,
    );
    if (row.verdict === 'go') assert.equal(verdict, { go: true }, row.name);
    else if (row.verdict === 'wait') assert.equal(verdict, { go: false, wait: true }, row.name);
    else {
      assert.is(verdict.go, false, row.name);
      assert.match((verdict as { reason: string }).reason, row.verdict, row.name);
    }
  }
});

test.run();
