// @deno
// A preview's database (lib/previews/database.ts): its name from any repo a forge could send
// (lower case, [a-z0-9_], 63 bytes, never shared by two repos or two pull requests), the app's
// DATABASE_URL, the DROP for old and new servers, and failures that never show the password.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, ValidationError, WorkError, messageOf } from '../../../lib/core/errors.ts';
import { repoFolderName } from '../../../lib/core/names.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import {
  PREVIEW_DATABASE_PREFIX,
  createPreviewDatabase,
  dropPreviewDatabase,
  dropStatements,
  listPreviewDatabases,
  prOfPreviewDatabase,
  previewDatabaseName,
  previewDatabaseUrl,
  resolvePreviewDatabaseServer,
} from '../../../lib/previews/database.ts';
import { MAX_PR } from '../../../lib/previews/name.ts';
import { closedPort } from '../../_helpers/common.ts';

const PASSWORD = 'pw:s3cr#t@x/y?z';
const ENCODED = encodeURIComponent(PASSWORD);

test('octo/site#42 is shipkit_preview_octo__site_pr_42', () => {
  assert.is(previewDatabaseName(repoFolderName('octo/site'), 42), 'shipkit_preview_octo__site_pr_42');
  assert.is(prOfPreviewDatabase('octo__site', 'shipkit_preview_octo__site_pr_42'), 42);
});

const HOSTILE_REPOS = [
  'octo/site',
  'Octo/Site',
  'octo/si-te',
  'octo/si.te',
  'octo/si_te',
  'octo/.github',
  'group/sub/app',
  'a__b/c',
  'a/_b',
  'UPPER/lower',
  `long-owner-${'x'.repeat(40)}/site`,
  `long-owner-${'x'.repeat(40)}/site2`,
  `${'a'.repeat(200)}/${'b'.repeat(200)}`,
  `${'a'.repeat(200)}/${'b'.repeat(199)}c`,
  Array.from({ length: 21 }, (_, i) => `p${i}`).join('/'),
];

test('any repo a forge could send: [a-z0-9_], 63 bytes at most, our prefix, one name each, read back', () => {
  const seen = new Map<string, string>();
  for (const repo of HOSTILE_REPOS) {
    const folder = repoFolderName(repo);
    for (const pr of [1, 42, MAX_PR]) {
      const name = previewDatabaseName(folder, pr);
      assert.ok(/^[a-z0-9_]+$/.test(name), `${repo}#${pr}: ${name}`);
      assert.ok(Buffer.byteLength(name) <= 63, `${repo}#${pr}: ${name} is ${name.length} bytes`);
      assert.ok(name.startsWith(PREVIEW_DATABASE_PREFIX), name);
      assert.is(prOfPreviewDatabase(folder, name), pr, `${repo}#${pr}: ${name}`);
      assert.is(seen.get(name), undefined, `${repo}#${pr} and ${seen.get(name)} share ${name}`);
      seen.set(name, `${repo}#${pr}`);
    }
  }
  // A long name keeps a readable start.
  assert.match(previewDatabaseName(repoFolderName(HOSTILE_REPOS[10]), 7), /^shipkit_preview_long_owner_xxx/);
});

test("another repo's database, or one not of ours, is no pull request of this repo", () => {
  const other = previewDatabaseName('octo__site_pr_4', 2); // shipkit_preview_octo__site_pr_4_pr_2
  for (const name of [
    other,
    'shipkit_preview_octo__site_pr_0',
    'shipkit_preview_octo__site_pr_042',
    'shipkit_preview_octo__site_pr_4x',
    'shipkit_preview_octo__site_pr_',
    'shipkit_preview_octo__site_pr_1234567890',
    'shipkit_preview_octo__sites_pr_4',
    'octo__site_pr_4',
    'postgres',
    'site_seed',
  ])
    assert.is(prOfPreviewDatabase('octo__site', name), undefined, name);
  assert.is(prOfPreviewDatabase('octo__site_pr_4', other), 2);
});

test('a pull request number that is not one is refused', () => {
  for (const pr of [0, -1, 1.5, NaN, MAX_PR + 1]) {
    try {
      previewDatabaseName('octo__site', pr);
      assert.unreachable(`${pr} accepted`);
    } catch (error) {
      assert.instance(error, ValidationError, messageOf(error));
    }
  }
});

test("the app's DATABASE_URL: the database replaced; user, password, host, port, query and scheme kept", () => {
  const db = 'shipkit_preview_octo__site_pr_42';
  const cases: Array<[string, string]> = [
    [
      `postgres://app:${ENCODED}@db.internal:6543/postgres?sslmode=require&application_name=a%20b`,
      `postgres://app:${ENCODED}@db.internal:6543/${db}?sslmode=require&application_name=a%20b`,
    ],
    ['postgresql://app@db.internal', `postgresql://app@db.internal/${db}`],
    ['postgres://app:pw@[::1]:5433/postgres', `postgres://app:pw@[::1]:5433/${db}`],
    ['postgresql:///postgres?host=/var/run/postgresql', `postgresql:///${db}?host=/var/run/postgresql`],
    ['postgres://db/site/extra#frag', `postgres://db/${db}#frag`],
    // A database named in the query too would win over the path for libpq: it goes.
    ['postgres://db/postgres?dbname=postgres&sslmode=verify-full', `postgres://db/${db}?sslmode=verify-full`],
    ['postgres://db/postgres?database=other', `postgres://db/${db}`],
  ];
  for (const [from, want] of cases) assert.is(previewDatabaseUrl(from, db), want, from);
  const url = new URL(previewDatabaseUrl(cases[0][0], db));
  assert.is(decodeURIComponent(url.password), PASSWORD);
});

test('DROP … WITH (FORCE) from PostgreSQL 13; before, its sessions ended first', () => {
  assert.equal(dropStatements('"d"', 'd', 150004), [{ text: 'DROP DATABASE IF EXISTS "d" WITH (FORCE)' }]);
  assert.equal(dropStatements('"d"', 'd', 130000), [{ text: 'DROP DATABASE IF EXISTS "d" WITH (FORCE)' }]);
  const old = dropStatements('"d"', 'd', 120017);
  assert.is(old.length, 2);
  assert.match(old[0].text, /pg_terminate_backend\(pid\) FROM pg_stat_activity WHERE datname = \$1/);
  assert.equal(old[0].values, ['d']);
  assert.is(old[1].text, 'DROP DATABASE IF EXISTS "d"');
});

const doc = parseYamlText(
  ['repos:', '  octo/site:', '    previews:', '      database:', '        url: env:PREVIEW_PG', ''].join('\n'),
  '/etc/shipkit/shipkit.yml',
);
const previews = (url: string) => ({ database: { url }, keyPath: ['repos', 'octo/site', 'previews'] });

test('database.url as env:NAME, file:PATH or literal; a missing or wrong one is named by FILE:LINE, never shown', async () => {
  const url = `postgres://app:${ENCODED}@db.internal/postgres`;
  const fromEnv = await resolvePreviewDatabaseServer(doc, previews('env:PREVIEW_PG'), { PREVIEW_PG: url });
  assert.equal([fromEnv.url, fromEnv.password, fromEnv.where], [url, PASSWORD, 'db.internal:5432/postgres as app']);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'preview-db-'));
  writeFileSync(path.join(dir, 'pg-url'), `${url}\n`);
  const fileDoc = { ...doc, file: path.join(dir, 'shipkit.yml') };
  assert.is((await resolvePreviewDatabaseServer(fileDoc, previews('file:pg-url'), {})).url, url);
  assert.is((await resolvePreviewDatabaseServer(doc, previews(url), {})).password, PASSWORD);

  try {
    await resolvePreviewDatabaseServer(doc, previews('env:PREVIEW_PG'), {});
    assert.unreachable('a missing variable accepted');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match(
      messageOf(error),
      /^\/etc\/shipkit\/shipkit.yml:5: repos\.octo\/site\.previews\.database\.url: .*PREVIEW_PG/,
    );
  }
  for (const wrong of [`mysql://app:${PASSWORD}@db/x`, PASSWORD, `https://app:${ENCODED}@db/x`]) {
    try {
      await resolvePreviewDatabaseServer(doc, previews('env:PREVIEW_PG'), { PREVIEW_PG: wrong });
      assert.unreachable(`${wrong} accepted`);
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match(messageOf(error), /shipkit.yml:5: .*not a PostgreSQL URL/);
      assert.not.ok(messageOf(error).includes(PASSWORD), messageOf(error));
      assert.not.ok(messageOf(error).includes(ENCODED), messageOf(error));
    }
  }
});

test('only databases of ours are made or dropped: anything else is refused before a connection', async () => {
  const server = { url: 'postgres://app:pw@127.0.0.1:1/postgres', where: '127.0.0.1:1/postgres', password: 'pw' };
  for (const name of [
    'postgres',
    'site_seed',
    'shipkit_preview_',
    'shipkit_preview_X',
    `shipkit_preview_${'a'.repeat(48)}`,
    'shipkit_preview_a"; DROP DATABASE postgres; --',
  ]) {
    for (const run of [() => dropPreviewDatabase(server, name), () => createPreviewDatabase(server, name)]) {
      try {
        await run();
        assert.unreachable(`${name} accepted`);
      } catch (error) {
        assert.instance(error, ValidationError, messageOf(error));
      }
    }
  }
});

test('a server out of reach: a WorkError naming the server and what was done, without the password', async () => {
  const port = await closedPort();
  const url = `postgres://app:${ENCODED}@127.0.0.1:${port}/postgres`;
  const server = await resolvePreviewDatabaseServer(doc, previews(url), {});
  const name = previewDatabaseName('octo__site', 42);
  for (const [run, doing] of [
    [() => createPreviewDatabase(server, name, 'site_seed'), `create the preview database ${name}`],
    [() => dropPreviewDatabase(server, name), `drop the preview database ${name}`],
    [() => listPreviewDatabases(server), 'list the preview databases'],
  ] as const) {
    try {
      await run();
      assert.unreachable('no error');
    } catch (error) {
      assert.instance(error, WorkError);
      const message = messageOf(error);
      assert.ok(
        message.startsWith(`Cannot ${doing} on 127.0.0.1:${port}/postgres as app: connection refused`),
        message,
      );
      assert.not.ok(message.includes(PASSWORD) || message.includes(ENCODED), message);
      assert.is((error as Error).cause, undefined);
    }
  }
});

test.run();
