// @deno
// Advisory locks by name (lib/db/locks.ts): one key each, none shared by two locks, a per-value
// key built around the SQL that holds the value.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LOCKS } from '../../../lib/db/locks.ts';

test('every lock has a key of its own', () => {
  const keys = Object.values(LOCKS).map((l) => (typeof l === 'string' ? l : l('$1')));
  assert.is(new Set(keys).size, keys.length);
  for (const key of keys) assert.match(key, /^hashtextextended\('shipkit [a-z]+( ' \|\| \$1|'), 0\)$/);
});

test('a per-value key holds the SQL it is given, not a value pasted into the text', () => {
  assert.is(LOCKS.repo('p_repo'), "hashtextextended('shipkit repo ' || p_repo, 0)");
  assert.is(LOCKS.job('$1'), "hashtextextended('shipkit job ' || $1, 0)");
});

test.run();
