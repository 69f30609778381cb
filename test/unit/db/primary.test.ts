// @deno
// The writable server of a `queue:` list (lib/db/primary.ts), the servers' answers stood in for:
// one writable is chosen; two are refused (split brain) until one is not; none keeps an
// unreachable choice but drops one that became a standby or read-only; a refused login is named once and
// never with its password; sessions follow the choice and those on a server left are cut.
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type pg from 'pg';
import { ConfigError } from '../../../lib/core/errors.ts';
import { createLogger } from '../../../lib/core/log.ts';
import { resolveQueueUrl, type QueueDatabase } from '../../../lib/db/connect.ts';
import { PrimaryFinder, resolveQueue, type ServerState } from '../../../lib/db/primary.ts';

const PASSWORD = 'hunter2-pw';

async function servers(): Promise<QueueDatabase[]> {
  return Promise.all(['db1', 'db2', 'db3'].map((host) => resolveQueueUrl(`postgres://shipkit:${PASSWORD}@${host}/q`)));
}

/** A finder whose servers answer what `answers` holds at each round; the log as text. */
async function finderWith(answers: Record<string, ServerState>) {
  let text = '';
  const stream = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
  const log = createLogger({ stream, color: false });
  const list = await servers();
  const finder = new PrimaryFinder(list, {
    log,
    everyMs: 60_000,
    searchEveryMs: 60_000,
    probe: async (server) => answers[server.where.split(':')[0]] ?? { kind: 'standby' },
  });
  return { finder, list, log: () => text };
}

const writable: ServerState = { kind: 'writable' };
const standby: ServerState = { kind: 'standby' };
const down: ServerState = {
  kind: 'unreachable',
  why: 'the queue database at db1:5432/q as shipkit: connection refused',
};

test('one server accepts writes: it is chosen and named', async () => {
  const { finder, log } = await finderWith({ db1: standby, db2: writable, db3: standby });
  assert.is((await finder.ready(0)).where, 'db2:5432/q as shipkit');
  assert.match(log(), 'writes go to db2:5432/q as shipkit');
  finder.stop();
});

test('two accept writes (split brain): none is chosen, both are named, until only one does', async () => {
  const answers: Record<string, ServerState> = { db1: writable, db2: writable, db3: standby };
  const { finder, log } = await finderWith(answers);
  const error = await finder.ready(0).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, 'db1:5432/q as shipkit and db2:5432/q as shipkit both accept writes (split brain)');
  assert.match(log(), /error.*split brain/);
  answers.db1 = standby;
  await finder.look();
  assert.is(finder.current?.where, 'db2:5432/q as shipkit');
  finder.stop();
});

test('only standbys: a clear ConfigError naming each; a chosen server that is only unreachable is kept', async () => {
  const answers: Record<string, ServerState> = { db1: standby, db2: standby, db3: standby };
  const { finder } = await finderWith(answers);
  const error = await finder.ready(0).catch((e) => e);
  assert.match(error.message, 'no server of queue: accepts writes (db1:5432/q as shipkit is a standby;');
  answers.db1 = writable;
  await finder.look();
  answers.db1 = down;
  await finder.look();
  assert.is(finder.current?.where, 'db1:5432/q as shipkit', 'a moment of silence does not drop it');
  answers.db1 = standby;
  await finder.look();
  assert.is(finder.current, undefined, 'a chosen server that became a standby is dropped');
  finder.stop();
});

test('a primary set read-only (fenced by default_transaction_read_only) is not written to', async () => {
  const answers: Record<string, ServerState> = { db1: writable, db2: writable };
  const { finder, log } = await finderWith(answers);
  await finder.ready(0).catch(() => undefined);
  assert.is(finder.current, undefined, 'split brain');
  answers.db1 = { kind: 'read-only' };
  await finder.look();
  assert.is(finder.current?.where, 'db2:5432/q as shipkit');
  assert.match(log(), 'db1:5432/q as shipkit is read-only');
  answers.db2 = { kind: 'read-only' };
  await finder.look();
  assert.is(finder.current, undefined, 'a chosen server set read-only is dropped');
  finder.stop();
});

test('a login refused on one server: named once, skipped, never with the password', async () => {
  const refused: ServerState = {
    kind: 'refused',
    why: 'the queue database at db1:5432/q as shipkit: the password was refused',
  };
  const { finder, log } = await finderWith({ db1: refused, db2: writable });
  await finder.ready(0);
  await finder.look();
  assert.is(finder.current?.where, 'db2:5432/q as shipkit');
  assert.is(log().split('the password was refused').length - 1, 1, 'named once, though asked twice');
  assert.match(log(), 'db1:5432/q as shipkit refuses our login (skipped)');
  assert.match(log(), 'it is skipped until that is fixed');
  assert.not.match(log(), PASSWORD);
  finder.stop();
});

class FakeClient extends EventEmitter {
  readonly config: pg.ClientConfig;
  cut = false;
  readonly connection = { stream: { destroy: () => void (this.cut = true) } };
  constructor(config: pg.ClientConfig) {
    super();
    this.config = config;
  }
  connect(): Promise<void> {
    return Promise.resolve();
  }
}

test('sessions are opened on the chosen server, refused without one, and cut when it is left', async () => {
  const answers: Record<string, ServerState> = { db1: writable, db2: standby };
  const { finder, list } = await finderWith(answers);
  await finder.ready(0);
  const Following = finder.follow(FakeClient as unknown as typeof pg.Client);
  const session = new Following({ connectionString: 'postgres://ignored/x' }) as unknown as FakeClient;
  assert.is(session.config.connectionString, list[0].url);
  await (session as unknown as pg.Client).connect();
  answers.db2 = writable;
  await finder.look();
  assert.ok(session.cut, 'the session on db1 is cut in a split brain');
  const refused = await new Following({}).connect().catch((e) => e);
  assert.match(refused.message, 'split brain');
  answers.db1 = down;
  await finder.look();
  const moved = new Following({}) as unknown as FakeClient;
  assert.is(moved.config.connectionString, list[1].url);
  finder.stop();
});

test('a list naming one server twice is refused before anything is asked', async () => {
  const url = `postgres://shipkit:${PASSWORD}@db1/q`;
  const error = await resolveQueue([url, url], { where: 'shipkit.yml: queue' }).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, 'shipkit.yml: queue[1]: db1:5432/q as shipkit is listed twice');
  assert.not.match(error.message, PASSWORD);
});

test.run();
