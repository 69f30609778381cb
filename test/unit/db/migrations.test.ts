// @deno
// The numbered migrations (lib/db/migrations.ts): numbers only go up, the last is the schema's
// version, each says what it adds, and the SQL takes its advisory locks by name (db/locks.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LOCKS } from '../../../lib/db/locks.ts';
import { MIGRATIONS } from '../../../lib/db/migrations.ts';
import { SCHEMA_VERSION } from '../../../lib/db/schema.ts';

test('numbered in order, the last one the version a database is brought to', () => {
  const versions = MIGRATIONS.map((m) => m.version);
  assert.equal(
    versions,
    [...versions].sort((a, b) => a - b),
  );
  assert.is(new Set(versions).size, versions.length, 'no number twice');
  assert.is(versions.at(-1), SCHEMA_VERSION);
  for (const m of MIGRATIONS) assert.ok(m.what.length > 0 && m.sql.trim().length > 0, `migration ${m.version}`);
});

test('no literal lock key in the SQL: every advisory lock is one of LOCKS', () => {
  for (const m of MIGRATIONS) {
    const keys = [...m.sql.matchAll(/pg_advisory\w*\(([^;]*?)\);/g)].map((x) => x[1]);
    for (const key of keys)
      assert.ok(
        Object.values(LOCKS).some((l) => (typeof l === 'string' ? l === key : key === l('p_repo'))),
        `${key} in migration ${m.version}`,
      );
  }
});

test.run();
