// A build log's steps (lib/web/job-steps.ts): opened and closed by step lines, their outcome, time
// and detail; output lines (`| ` after the time) never open or close a step; a step left open is
// running while the job runs and unfinished after; a failed one is listed first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLogSteps, stepsFailingFirst } from '../../../lib/web/job-steps.ts';

const LOG = [
  '=== shipkit job J start {"id":"J"}',
  '13:30:00.000 --- step pull',
  '13:30:00.100 | Cloning into repo',
  '13:30:01.000 --- step pull ok (1.0 s): abc1234',
  '13:30:01.000 --- step downloads',
  '13:30:01.001 --- step downloads skipped: no manifest.txt',
  '13:30:01.002 --- step compile',
  '13:30:01.500 | 13:30:01.600 --- step compile ok (0.1 s)',
  '13:30:05.000 !!! step compile failed after 4.0 s: exit 2',
  '=== shipkit job J end {"status":"failed"}',
].join('\n');

test('steps, outcomes, times and details; the header and trailer around them', () => {
  const { before, steps, after } = parseLogSteps(`${LOG}\n`);
  assert.equal(before, ['=== shipkit job J start {"id":"J"}']);
  assert.equal(
    steps.map((s) => [s.name, s.outcome, s.seconds, s.detail]),
    [
      ['pull', 'ok', 1, 'abc1234'],
      ['downloads', 'skipped', undefined, 'no manifest.txt'],
      ['compile', 'failed', 4, 'exit 2'],
    ],
  );
  assert.is(steps[0].lines.length, 3);
  assert.equal(after, ['=== shipkit job J end {"status":"failed"}']);
});

test("a build's output cannot forge a step line", () => {
  const { steps } = parseLogSteps(LOG);
  const compile = steps.find((s) => s.name === 'compile')!;
  assert.is(compile.outcome, 'failed', 'the forged "ok" inside an output line did not close it');
  assert.ok(compile.lines.some((l) => l.includes('| 13:30:01.600 --- step compile ok')));
});

test("a closing line of another step's name does not close the open one", () => {
  const { steps } = parseLogSteps(['00:00:00.000 --- step a', '00:00:01.000 --- step b ok (1.0 s)'].join('\n'));
  assert.is(steps.length, 1);
  assert.is(steps[0].outcome, 'unfinished');
  assert.is(steps[0].lines.length, 2);
});

test('an open step: running while the job runs, unfinished once it has ended or another step opens', () => {
  const open = '00:00:00.000 --- step install\n00:00:00.100 | added 3 packages\n';
  assert.is(parseLogSteps(open, { running: true }).steps[0].outcome, 'running');
  assert.is(parseLogSteps(open).steps[0].outcome, 'unfinished');
  const next = parseLogSteps(`${open}00:00:01.000 --- step compile\n`, { running: true }).steps;
  assert.equal(
    next.map((s) => s.outcome),
    ['unfinished', 'running'],
  );
});

test('stepsFailingFirst: failed and unfinished first, the rest in order', () => {
  const { steps } = parseLogSteps(LOG);
  assert.equal(
    stepsFailingFirst(steps).map((s) => s.name),
    ['compile', 'pull', 'downloads'],
  );
  assert.equal(stepsFailingFirst([]), []);
});

test.run();
