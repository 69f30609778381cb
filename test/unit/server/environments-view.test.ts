// @deno
// The Environments view read from real folder DESTs with VERSION files written by hand and real
// OpenPGP approver keys: each environment's release and window, the source's release waiting for
// approvals (none given: 0 of 1, every approver awaited; one given: it counts), a DEST that cannot
// be read or does not answer as its row's error, and the view kept for its ttl.
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseApps } from '../../../lib/config/environments.ts';
import { openDestination } from '../../../lib/release/dest/destination.ts';
import { giveApproval } from '../../../lib/release/gates/approvals.ts';
import { environmentsSource, readEnvironments } from '../../../lib/server/environments-view.ts';
import { tmpDir } from '../../_helpers/common.ts';

const SHA = 'c'.repeat(64);
const NOW = new Date('2026-11-20T13:00:00.000Z');
let base: string;
const keys: Record<string, { secret: string; public: string; uid: string }> = {};

test.before(async () => {
  base = tmpDir();
  const openpgp = await import('openpgp');
  mkdirSync(path.join(base, 'keys'));
  for (const name of ['alice', 'bob']) {
    const { privateKey, publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ name, email: `${name}@example.com` }],
      format: 'armored',
    });
    keys[name] = {
      secret: path.join(base, 'keys', `${name}-secret.asc`),
      public: path.join(base, 'keys', `${name}.asc`),
      uid: `${name} <${name}@example.com>`,
    };
    writeFileSync(keys[name].secret, privateKey);
    writeFileSync(keys[name].public, publicKey);
  }
});

let n = 0;
/** A config folder with staging and production DESTs (production: approvals by alice or bob, a deny window). */
function world(more = '') {
  const dir = path.join(base, `world-${++n}`);
  mkdirSync(path.join(dir, 'staging'), { recursive: true });
  mkdirSync(path.join(dir, 'production'), { recursive: true });
  const text = `apps:
  my-app:
    environments:
      staging: { to: staging }
      production:
        to: production
        approvals: { required: 1, from: [${keys.alice.public}, ${keys.bob.public}] }
        windows: [{ deny: "2026-11-20 00:00 - 2026-11-23 08:00" }]
${more}`;
  const apps = parseApps(parseYamlText(text, path.join(dir, 'shipkit.yml')), new Map());
  const version = (env: string, lines: string) => writeFileSync(path.join(dir, env, 'VERSION'), lines);
  return { dir, apps, version };
}

const versionFile = (version: string, { seq = 1, rollout = '', sha = SHA } = {}) =>
  `CURRENT ${version} my-app-linux-${version}.tar.gz\n${sha ? `SHA256 ${sha}\n` : ''}SEQ ${seq}\n${rollout ? `ROLLOUT ${rollout}\n` : ''}`;

const read = (apps: ReturnType<typeof world>['apps'], timeoutMs?: number) =>
  readEnvironments({ apps, log: silentLogger, now: () => NOW, timeoutMs });

test('each environment: its release, its window now; the source release waits, 0 of 1, every approver awaited', async () => {
  const w = world();
  w.version('staging', versionFile('1.4', { seq: 12 }));
  w.version('production', versionFile('1.3', { seq: 9, rollout: '25', sha: 'd'.repeat(64) }));
  const view = await read(w.apps);
  assert.is(view.read, NOW.toISOString());
  assert.equal(
    view.apps.map((a) => [a.app, a.environments.map((e) => e.name)]),
    [['my-app', ['staging', 'production']]],
  );
  const [staging, production] = view.apps[0].environments;
  assert.equal(staging.current, { version: '1.4', rollout: 100, seq: 12 });
  assert.equal(staging.window, { open: true, reason: null, until: null });
  assert.equal([staging.from, staging.approvals, staging.waits, staging.error], [null, null, null, null]);
  assert.is(staging.to, path.join(w.dir, 'staging'));
  assert.equal(production.current, { version: '1.3', rollout: 25, seq: 9 });
  assert.equal(production.window, {
    open: false,
    reason: 'deny window "2026-11-20 00:00 - 2026-11-23 08:00" (UTC)',
    until: '2026-11-23T08:00:00.000Z',
  });
  assert.equal(production.waits, {
    version: '1.4',
    sha256: production.waits?.sha256,
    from: 'staging',
    required: 1,
    approved: [],
    awaited: [keys.alice.uid, keys.bob.uid],
    refused: [],
    users: [],
    error: null,
  });
  assert.match(
    production.waits?.sha256 ?? '',
    /^[0-9a-f]{64}$/,
    "the source VERSION's sha256: an approval is bound to it",
  );
});

test("an approval given at production's DEST counts: 1 of 1; the same release there: nothing waits", async () => {
  const w = world();
  w.version('staging', versionFile('1.4'));
  await giveApproval({
    dest: openDestination(path.join(w.dir, 'production'), silentLogger),
    app: 'my-app',
    version: '1.4',
    sha256: SHA,
    env: 'production',
    key: keys.bob.secret,
    rule: w.apps.get('my-app')!.environments.get('production')!.approvals!,
    publishers: [],
    now: new Date(NOW.getTime() - 60_000),
    log: silentLogger,
  });
  const production = (await read(w.apps)).apps[0].environments[1];
  assert.is(production.current, null, 'nothing published at production yet');
  assert.equal(
    [production.waits?.approved, production.waits?.awaited, production.waits?.error],
    [[keys.bob.uid], [keys.alice.uid], null],
  );
  w.version('production', versionFile('1.4.0'));
  assert.is((await read(w.apps)).apps[0].environments[1].waits, null, '1.4.0 is 1.4, with the same SHA256');
});

test('a VERSION without SHA256 at the source: the approvals cannot be counted, said in the row', async () => {
  const w = world();
  w.version('staging', versionFile('1.4', { sha: '' }));
  const waits = (await read(w.apps)).apps[0].environments[1].waits;
  assert.is(waits?.version, '1.4');
  assert.match(waits?.error ?? '', "staging's VERSION has no SHA256 line");
});

test('a DEST that cannot be read, or a VERSION that is none: that row says why, the others are read', async () => {
  const w = world('  other:\n    environments:\n      live: { to: a-file }\n      next: { to: not-yet }\n');
  w.version('staging', versionFile('1.4'));
  writeFileSync(path.join(w.dir, 'a-file'), 'not a folder\n');
  const broken = world();
  broken.version('staging', 'CURRENT <script> x.tar.gz\n');
  const [one, two] = await Promise.all([read(w.apps), read(broken.apps)]);
  assert.is(one.apps[0].environments[0].current?.version, '1.4');
  const [live, next] = one.apps[1].environments;
  assert.equal([live.current, live.error?.includes('ENOTDIR')], [null, true], live.error ?? 'no error');
  assert.equal([next.current, next.error], [null, null], 'a DEST folder not there yet: nothing published');
  const staging = two.apps[0].environments[0];
  assert.is(staging.current, null);
  assert.match(staging.error ?? '', 'version in VERSION line 1');
  assert.is(two.apps[0].environments[1].waits, null, 'nothing is known to wait');
});

test('a DEST that does not answer is given up after timeoutMs: its row says so', async () => {
  const w = world();
  w.version('production', versionFile('1.3'));
  const fifo = path.join(w.dir, 'staging', 'VERSION');
  if (spawnSync('mkfifo', [fifo]).status !== 0) return;
  const started = Date.now();
  const view = await read(w.apps, 300);
  assert.ok(Date.now() - started < 3_000, 'not waited for');
  assert.match(
    view.apps[0].environments[0].error ?? '',
    `no answer for VERSION at ${path.join(w.dir, 'staging')} within 0.3 s`,
  );
  assert.is(view.apps[0].environments[1].current?.version, '1.3');
  closeSync(openSync(fifo, 'w')); // the blocked read ends
});

test('environmentsSource keeps a view for its ttl, then reads the DESTs again', async () => {
  const w = world();
  w.version('staging', versionFile('1.4'));
  let clock = NOW.getTime();
  const source = environmentsSource({ apps: w.apps, log: silentLogger, ttlMs: 5_000, now: () => new Date(clock) });
  const first = await source.read();
  w.version('staging', versionFile('1.5'));
  clock += 4_000;
  assert.is(await source.read(), first, 'within the ttl: the same view');
  clock += 2_000;
  assert.is((await source.read()).apps[0].environments[0].current?.version, '1.5');
});

test.run();
