// A preview's name (lib/previews/name.ts): pr- and the pull request's number, nothing else, in
// both directions; names that could climb out of a folder or carry a branch are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError, messageOf } from '../../../lib/core/errors.ts';
import { MAX_PR, prOfName, previewName, previewNameProblem, validatePreviewName } from '../../../lib/previews/name.ts';

test('pr-N from a pull request number and back', () => {
  assert.is(previewName(42), 'pr-42');
  assert.is(previewName(MAX_PR), `pr-${MAX_PR}`);
  assert.is(prOfName('pr-42'), 42);
  assert.is(prOfName(previewName(7)), 7);
  for (const bad of [0, -1, 1.5, NaN, Infinity, MAX_PR + 1]) {
    try {
      previewName(bad);
      assert.unreachable(`${bad} accepted`);
    } catch (error) {
      assert.instance(error, ValidationError, messageOf(error));
    }
  }
});

test('only pr- and a positive whole number without leading zeros is a name', () => {
  for (const ok of ['pr-1', 'pr-42', 'pr-999999999']) assert.is(previewNameProblem(ok), undefined, ok);
  const refused: unknown[] = [
    'pr-0',
    'pr-01',
    'pr--1',
    'pr-1a',
    'pr-1.conf',
    'PR-1',
    'pr-1 ',
    ' pr-1',
    'pr-1\n',
    'pr-1/..',
    '../pr-1',
    'pr-1234567890',
    'feature/login',
    'pr-',
    '',
    42,
    undefined,
  ];
  for (const name of refused) {
    assert.ok(previewNameProblem(name), `${JSON.stringify(name)} refused`);
    try {
      validatePreviewName(name);
      assert.unreachable(`${JSON.stringify(name)} accepted`);
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match(messageOf(error), /^Invalid preview name .*such as pr-42/);
    }
  }
  assert.is(validatePreviewName('pr-3'), 'pr-3');
});

test.run();
