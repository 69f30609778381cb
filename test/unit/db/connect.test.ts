// @deno
// The queue database's URL and how a failure to reach it reads: the host named, the password never.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeDbError, redactPassword, resolveQueueUrl, startError } from '../../../lib/db/connect.ts';
import { ConfigError } from '../../../lib/core/errors.ts';

const PASSWORD = 's3cr#t@pw';
const URL_TEXT = `postgres://builder:${encodeURIComponent(PASSWORD)}@db.internal:6543/shipkit`;

test('a URL, env:NAME or file:PATH; named by host, port, database and user', async () => {
  const db = await resolveQueueUrl(URL_TEXT);
  assert.is(db.where, 'db.internal:6543/shipkit as builder');
  assert.is(db.password, PASSWORD);
  const fromEnv = await resolveQueueUrl('env:QUEUE', { env: { QUEUE: 'postgresql://db/jobs' } });
  assert.is(fromEnv.where, 'db:5432/jobs');
});

test('not a PostgreSQL URL, or not a URL: a ConfigError that shows no credential', async () => {
  for (const value of ['mysql://u:hunter2@db/x', 'db.internal:5432', 'env:MISSING']) {
    const error = await resolveQueueUrl(value, { env: {} }).catch((e) => e);
    assert.instance(error, ConfigError, value);
    assert.not.match(error.message, 'hunter2');
  }
});

test('refusals read as sentences that name the database and never hold the password', async () => {
  const db = await resolveQueueUrl(URL_TEXT);
  const cases: Array<[unknown, RegExp]> = [
    [
      Object.assign(new Error(`password authentication failed for user "builder"`), { code: '28P01' }),
      /password was refused/,
    ],
    [Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6543'), { code: 'ECONNREFUSED' }), /connection refused/],
    [Object.assign(new Error('getaddrinfo ENOTFOUND db.internal'), { code: 'ENOTFOUND' }), /no such host/],
    [new Error(`could not connect to ${URL_TEXT} with ${PASSWORD}`), /\*\*\*/],
  ];
  for (const [error, expected] of cases) {
    const text = describeDbError(error, db);
    assert.match(text, 'db.internal:6543/shipkit');
    assert.match(text, expected);
    assert.not.ok(text.includes(PASSWORD) || text.includes(encodeURIComponent(PASSWORD)), text);
  }
  assert.instance(startError(cases[0][0], db), ConfigError);
  assert.is(redactPassword(`x ${PASSWORD} y`, db), 'x *** y');
});

test.run();
