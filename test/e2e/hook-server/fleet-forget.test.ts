// Forgetting fleet hosts (F10/F11, docs/fleet.md "Forgetting hosts") against the real hook-server
// and the real `shipkit fleet forget`: an app at max_hosts refuses a new host (403, counted as
// 'full', nothing written) while its known hosts still report; hosts named, and hosts silent for
// N days, are forgotten and stay gone after a restart; hook-server forgets hosts silent longer
// than forget_after at start; a forgotten host enrols again; hostile requests to POST
// /fleet/forget and wrong command lines change nothing.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeLine } from '../../../lib/core/append-log.ts';
import { signRequest } from '../../../lib/http/signing.ts';
import { hostCredential } from '../../../lib/release/format/fleet-report.ts';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const FLEET_SECRET = `fleet-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `s-${randomUUID()}`, HOOK_TOKEN: TOKEN, FLEET_WEB: FLEET_SECRET };
const DAY = 86_400_000;
const hostId = () => randomBytes(16).toString('hex');

/** shipkit.yml with `fleet: web:` and the given max_hosts / forget_after lines. */
function config(dir: string, settings: { max_hosts?: number; forget_after?: number } = {}): string {
  const file = writeConfig(dir, { repos: { 'octo/site': {} } });
  const extra = Object.entries(settings).map(([key, value]) => `    ${key}: ${value}\n`);
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n${extra.join('')}`);
  return file;
}

const fleetLog = (dir: string) => path.join(dir, 'data', 'fleet', 'fleet.log');

/** A registry on disk before hook-server starts: each host's report accepted `daysAgo` days ago. */
function writeRegistry(dir: string, hosts: Array<{ host: string; daysAgo: number }>): void {
  mkdirSync(path.dirname(fleetLog(dir)), { recursive: true, mode: 0o700 });
  const lines = hosts.map(({ host, daysAgo }) =>
    encodeLine({
      kind: 'report',
      app: 'web',
      entry: {
        host,
        version: '1.1',
        previous: '1.0',
        seq: 3,
        bucket: rolloutBucket(host, '1.1'),
        claimed_bucket: null,
        result: 'updated',
        reason: '',
        seconds: null,
        at: Date.now() - daysAgo * DAY,
      },
    }),
  );
  writeFileSync(fleetLog(dir), lines.join(''), { mode: 0o600 });
}

function report(host: string, seq = 3) {
  return {
    app: 'web',
    host,
    version: '1.1',
    previous: '1.0',
    seq,
    bucket: rolloutBucket(host, '1.1'),
    result: 'updated',
  };
}

async function post(server: Server, route: string, body: unknown, key = FLEET_SECRET, raw?: string) {
  const text = raw ?? JSON.stringify(body);
  const headers = signRequest(key, 'POST', route, { body: text });
  const res = await fetch(`${server.url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: text,
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as any, headers, text };
}

async function hostsOf(server: Server): Promise<string[]> {
  const res = await fetch(`${server.url}/fleet/web`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (((await res.json()) as any).hosts as Array<{ host: string }>).map((h) => h.host).sort();
}

async function metrics(server: Server): Promise<string> {
  return (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
}

const start = (file: string) => startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0'], { env });

/** `shipkit fleet forget web …` against the server, as an operator runs it. */
const forget = (server: Server, args: string[], extraEnv: Record<string, string> = {}) =>
  runScript('shipkit', ['fleet', 'forget', 'web', '--fleet', server.url, '--fleet-secret', 'env:FLEET_WEB', ...args], {
    env: { ...env, ...extraEnv },
  });

test('at max_hosts a new host is refused (403, counted as full, nothing written); a known host still reports', async () => {
  const dir = tmpDir();
  const server = await start(config(dir, { max_hosts: 3 }));
  try {
    const known = [hostId(), hostId(), hostId()];
    const credentials: string[] = [];
    for (const host of known) {
      const answer = await post(server, '/fleet/reports', report(host));
      assert.is(answer.status, 202);
      credentials.push(answer.json.credential);
    }
    const stranger = hostId();
    const refused = await post(server, '/fleet/reports', report(stranger));
    assert.is(refused.status, 403);
    assert.match(refused.json.error, 'the fleet registry of web is full (max_hosts: 3)');
    assert.match(refused.json.error, '`shipkit fleet forget`');
    assert.not.ok('credential' in refused.json, 'no credential for a host that is not in');
    assert.not.match(readFileSync(fleetLog(dir), 'utf8'), stranger, 'nothing written');
    assert.equal(await hostsOf(server), [...known].sort());

    const again = await post(server, '/fleet/reports', report(known[0], 4), credentials[0]);
    assert.is(again.status, 202, 'a known host at the cap');
    assert.match(await metrics(server), 'shipkit_fleet_reports_refused_total{reason="full"} 1');
    assert.match(server.output(), /request refused.*the fleet registry of web is full/);

    // Forgetting one makes room for the stranger.
    const forgot = await forget(server, [known[1]]);
    assert.is(forgot.exitCode, 0, forgot.stderr);
    assert.is((await post(server, '/fleet/reports', report(stranger))).status, 202);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('`shipkit fleet forget` takes out named hosts and silent ones; they stay gone after a restart', async () => {
  const dir = tmpDir();
  const [named, silent1, silent2, recent] = [hostId(), hostId(), hostId(), hostId()];
  writeRegistry(dir, [
    { host: named, daysAgo: 1 },
    { host: silent1, daysAgo: 15 },
    { host: silent2, daysAgo: 20 },
    { host: recent, daysAgo: 2 },
  ]);
  const file = config(dir, { forget_after: 0 });
  let server = await start(file);
  try {
    assert.equal(await hostsOf(server), [named, silent1, silent2, recent].sort(), 'forget_after: 0 forgets none');
    const byName = await forget(server, [named, hostId()]);
    assert.is(byName.exitCode, 0, byName.stderr);
    assert.is(byName.stdout, 'Forgot 1 host of web (of the 2 named).\n', 'a host it never had is not counted');

    const secretFile = path.join(dir, 'fleet.secret');
    writeFileSync(secretFile, `${FLEET_SECRET}\n`, { mode: 0o600 });
    const bySilence = await runScript('shipkit', [
      'fleet',
      'forget',
      'web',
      '--fleet',
      server.url,
      '--fleet-secret',
      `file:${secretFile}`,
      '--silent-for',
      '10',
      '--json',
    ]);
    assert.is(bySilence.exitCode, 0, bySilence.stderr);
    assert.equal(JSON.parse(bySilence.stdout), { app: 'web', forgotten: 2 });
    assert.equal(await hostsOf(server), [recent]);
    assert.match(server.output(), /fleet: forgot 2 hosts \(shipkit fleet forget\)/);

    const none = await forget(server, ['--silent-for', '10']);
    assert.equal([none.exitCode, none.stdout], [0, 'Forgot 0 hosts of web (silent for over 10 days).\n']);
    assert.is(await server.stop(), 0);
    server = await start(file);
    assert.equal(await hostsOf(server), [recent], 'still gone after a restart');
  } finally {
    await server.stop();
  }
});

test('hook-server forgets hosts silent for longer than forget_after at start, for good', async () => {
  const dir = tmpDir();
  const [old, fresh] = [hostId(), hostId()];
  writeRegistry(dir, [
    { host: old, daysAgo: 40 },
    { host: fresh, daysAgo: 1 },
  ]);
  let server = await start(config(dir, { forget_after: 30 }));
  try {
    assert.equal(await hostsOf(server), [fresh]);
    assert.match(server.output(), 'fleet: forgot 1 host silent for over 30 days');
    assert.is(await server.stop(), 0);
    // The default (30 days) would forget it again: 0 shows the forgetting itself was kept.
    server = await start(config(dir, { forget_after: 0 }));
    assert.equal(await hostsOf(server), [fresh]);
    assert.not.match(server.output(), 'fleet: forgot');
  } finally {
    await server.stop();
  }
});

test('a forgotten host that reports again enrols again, with the app secret or its own credential', async () => {
  const dir = tmpDir();
  const server = await start(config(dir));
  try {
    const [a, b] = [hostId(), hostId()];
    const credentialA = (await post(server, '/fleet/reports', report(a))).json.credential;
    const credentialB = (await post(server, '/fleet/reports', report(b))).json.credential;
    // Once a host signs with its own credential, the app's secret no longer speaks for it.
    assert.is((await post(server, '/fleet/reports', report(a, 4), credentialA)).status, 202);
    assert.is((await post(server, '/fleet/reports', report(a, 5), FLEET_SECRET)).status, 401, 'enrolled');
    const forgot = await post(server, '/fleet/forget', { app: 'web', hosts: [a, b] });
    assert.equal([forgot.status, forgot.json], [200, { ok: true, forgotten: 2 }]);
    assert.equal(await hostsOf(server), []);

    // A reinstalled host has only report_secret: it enrols as a new host does.
    const enrol = await post(server, '/fleet/reports', report(a, 1));
    assert.is(enrol.status, 202, 'a lower SEQ than before: it is a new host now');
    assert.is(enrol.json.credential, hostCredential(FLEET_SECRET, a));
    // A host that kept its credential goes on signing with it.
    assert.equal((await post(server, '/fleet/reports', report(b, 3), credentialB)).json, { ok: true });
    assert.equal(await hostsOf(server), [a, b].sort());
    assert.is((await post(server, '/fleet/reports', report(a, 2), credentialA)).status, 202);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('hostile requests to POST /fleet/forget: each refused with its status, counted, and nothing forgotten', async () => {
  const dir = tmpDir();
  const server = await start(config(dir));
  try {
    const host = hostId();
    const credential = (await post(server, '/fleet/reports', report(host))).json.credential;
    const good = { app: 'web', hosts: [host] };
    const cases: Array<[string, () => Promise<{ status: number; json: any }>, number, RegExp]> = [
      ['wrong secret', () => post(server, '/fleet/forget', good, 'not-the-secret'), 401, /unauthorized/],
      ["a host's own credential", () => post(server, '/fleet/forget', good, credential), 401, /unauthorized/],
      ['unknown app', () => post(server, '/fleet/forget', { ...good, app: 'other' }), 404, /unknown app/],
      ['not JSON', () => post(server, '/fleet/forget', null, FLEET_SECRET, '{"app":"web",'), 400, /body is not JSON/],
      ['neither', () => post(server, '/fleet/forget', { app: 'web' }), 400, /either hosts .* or silent_for_days/],
      ['both', () => post(server, '/fleet/forget', { ...good, silent_for_days: 1 }), 400, /not both/],
      [
        'a bad host id',
        () => post(server, '/fleet/forget', { app: 'web', hosts: ['../x'] }),
        400,
        /"\.\.\/x" is not a host id/,
      ],
      [
        '0 days',
        () => post(server, '/fleet/forget', { app: 'web', silent_for_days: 0 }),
        400,
        /silent_for_days must be/,
      ],
      [
        'days as text',
        () => post(server, '/fleet/forget', { app: 'web', silent_for_days: '1' }),
        400,
        /silent_for_days/,
      ],
      [
        '1001 hosts',
        () => post(server, '/fleet/forget', { app: 'web', hosts: Array.from({ length: 1001 }, hostId) }),
        400,
        /hosts must be a list of 1 to 1000/,
      ],
      [
        'a body over 64 KiB',
        () => post(server, '/fleet/forget', { app: 'web', hosts: [host], pad: 'x'.repeat(70_000) }),
        413,
        /body too large/,
      ],
    ];
    for (const [label, send, status, message] of cases) {
      const answer = await send();
      assert.is(answer.status, status, label);
      assert.match(answer.json?.error ?? '', message, label);
    }
    const unsigned = await fetch(`${server.url}/fleet/forget`, { method: 'POST', body: JSON.stringify(good) });
    assert.is(unsigned.status, 401, 'unsigned');
    const sent = await post(server, '/fleet/forget', { app: 'web', hosts: [hostId()] });
    assert.equal([sent.status, sent.json.forgotten], [200, 0]);
    const replay = await fetch(`${server.url}/fleet/forget`, {
      method: 'POST',
      headers: sent.headers,
      body: sent.text,
    });
    assert.is(replay.status, 401, 'the same signed request again');
    assert.is((await fetch(`${server.url}/fleet/forget`, { method: 'DELETE' })).status, 405);

    assert.equal(await hostsOf(server), [host], 'nothing forgotten');
    assert.not.match(readFileSync(fleetLog(dir), 'utf8'), '"kind":"forget"', 'nothing written');
    const text = await metrics(server);
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="bad_signature"} 3');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="malformed"} 7');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="too_large"} 1');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="replay"} 1');
    assert.not.match(server.output(), FLEET_SECRET, 'the fleet secret is never logged');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('`shipkit fleet forget` refuses a wrong command line (exit 2) and a wrong secret or app, forgetting nothing', async () => {
  const dir = tmpDir();
  const server = await start(config(dir));
  try {
    const host = hostId();
    await post(server, '/fleet/reports', report(host));
    const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
      ['a bad host id', ['not-a-host'], {}, /"not-a-host" is not a host id: 32 lowercase hex characters/],
      ['an upper-case host id', [host.toUpperCase()], {}, /is not a host id/],
      ['hosts and --silent-for', [host, '--silent-for', '3'], {}, /Name hosts or give --silent-for DAYS, not both/],
      ['neither', [], {}, /Name the hosts to forget, or give --silent-for DAYS/],
      ['--silent-for 0', ['--silent-for', '0'], {}, /--silent-for must be between 1 and 36500/],
      ['the wrong secret', [host], { FLEET_WEB: 'not-the-secret' }, /--fleet-secret is not the secret of app web/],
      ['an unset secret variable', [host], { FLEET_WEB: '' }, /--fleet-secret: environment variable FLEET_WEB/],
    ];
    for (const [label, args, extraEnv, message] of cases) {
      const result = await forget(server, args, extraEnv);
      assert.is(result.exitCode, 2, `${label}: ${result.stderr}`);
      assert.match(result.stderr, message, label);
      assert.is(result.stdout, '', label);
    }
    const literal = await runScript(
      'shipkit',
      ['fleet', 'forget', 'web', '--fleet', server.url, '--fleet-secret', FLEET_SECRET, host],
      { env },
    );
    assert.is(literal.exitCode, 2);
    assert.match(literal.stderr, /--fleet-secret takes file:PATH or env:NAME/);
    assert.not.match(literal.stderr, FLEET_SECRET, 'the secret is not echoed');
    const noFleet = await runScript('shipkit', ['fleet', 'forget', 'web', '--fleet-secret', 'env:FLEET_WEB', host], {
      env,
    });
    assert.equal(
      [noFleet.exitCode, noFleet.stderr.trim()],
      [2, 'error: Missing --fleet. Run `fleet forget --help` for usage.'],
    );
    const otherApp = await runScript(
      'shipkit',
      ['fleet', 'forget', 'other', '--fleet', server.url, '--fleet-secret', 'env:FLEET_WEB', host],
      { env },
    );
    assert.is(otherApp.exitCode, 2);
    assert.match(otherApp.stderr, /does not know app other \(404\)/);
    const away = await runScript(
      'shipkit',
      ['fleet', 'forget', 'web', '--fleet', 'http://127.0.0.1:9', '--fleet-secret', 'env:FLEET_WEB', host],
      { env },
    );
    assert.is(away.exitCode, 1);
    assert.match(away.stderr, /Could not reach hook-server at http:\/\/127\.0\.0\.1:9/);
    const help = await runScript('shipkit', ['fleet', 'forget', '--help']);
    assert.is(help.exitCode, 0);
    assert.match(help.stdout, /^Usage: fleet forget APP --fleet URL/);
    assert.equal(await hostsOf(server), [host], 'nothing forgotten');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test.run();
