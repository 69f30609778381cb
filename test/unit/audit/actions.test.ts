// What a posted rollout state means, told from the one it replaces (table-driven).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rolloutAction } from '../../../lib/audit/actions.ts';

const at = (version: string, step: number, state: string) => ({ version, step, state });

test('start, step, halt, resume, done, rollback; a repeat or a wait at the same step is none', () => {
  const cases: Array<[ReturnType<typeof at> | null, ReturnType<typeof at>, string | undefined]> = [
    [null, at('1.0.0', 1, 'running'), 'rollout.start'],
    [at('0.9.0', 3, 'done'), at('1.0.0', 1, 'running'), 'rollout.start'],
    [at('1.0.0', 1, 'running'), at('1.0.0', 2, 'running'), 'rollout.step'],
    [at('1.0.0', 1, 'running'), at('1.0.0', 1, 'waiting'), undefined],
    [at('1.0.0', 2, 'waiting'), at('1.0.0', 2, 'waiting'), undefined],
    [at('1.0.0', 2, 'running'), at('1.0.0', 2, 'halted'), 'rollout.halt'],
    [at('1.0.0', 2, 'halted'), at('1.0.0', 2, 'halted'), undefined],
    [at('1.0.0', 2, 'halted'), at('1.0.0', 2, 'running'), 'rollout.resume'],
    [at('1.0.0', 2, 'halted'), at('1.0.0', 3, 'running'), 'rollout.resume'],
    [at('1.0.0', 3, 'running'), at('1.0.0', 3, 'done'), 'rollout.done'],
    [at('1.0.0', 2, 'halted'), at('1.0.0', 2, 'rolled_back'), 'rollback'],
    [null, at('1.0.0', 1, 'rolled_back'), 'rollback'],
    [at('1.0.0', 1, 'rolled_back'), at('1.0.0', 1, 'rolled_back'), undefined],
    [at('1.0.0', 1, 'rolled_back'), at('1.0.0', 1, 'running'), 'rollout.start'],
  ];
  for (const [before, after, want] of cases)
    assert.is(rolloutAction(before, after), want, `${JSON.stringify(before)} → ${JSON.stringify(after)}`);
});

test.run();
