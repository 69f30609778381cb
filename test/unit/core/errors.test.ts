// Error classes and exit codes (lib/core/errors.ts): what a user got wrong exits 2, what failed
// exits 1; messageOf reads any thrown value without its stack.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ConfigError,
  exitCodeFor,
  messageOf,
  RemoteError,
  UsageError,
  ValidationError,
  VerificationError,
  WorkError,
} from '../../../lib/core/errors.ts';

test('usage, configuration and validation errors exit 2; the rest 1', () => {
  for (const E of [UsageError, ConfigError, ValidationError]) assert.is(exitCodeFor(new E('x')), 2, E.name);
  for (const E of [VerificationError, RemoteError, WorkError]) assert.is(exitCodeFor(new E('x')), 1, E.name);
  assert.is(exitCodeFor(new Error('plain')), 1);
  assert.is(exitCodeFor('a string'), 1);
  assert.is(exitCodeFor(undefined), 1);
});

test('each class names itself, keeps its cause and is an Error', () => {
  const cause = new Error('ENOENT');
  const error = new ConfigError('no such file', { cause });
  assert.is(error.name, 'ConfigError');
  assert.is(error.cause, cause);
  assert.instance(error, Error);
  assert.match(String(new WorkError('step failed')), /^WorkError: step failed$/);
});

test('messageOf: an Error its message, anything else as text', () => {
  assert.is(messageOf(new RemoteError('503 from the server')), '503 from the server');
  assert.is(messageOf('thrown string'), 'thrown string');
  assert.is(messageOf(42), '42');
  assert.is(messageOf(null), 'null');
  assert.is(messageOf({ toString: () => 'custom' }), 'custom');
  assert.not.match(messageOf(new Error('short')), /\n\s+at /, 'no stack');
});

test.run();
