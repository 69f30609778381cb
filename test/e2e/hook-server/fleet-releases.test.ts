// The fleet's truth (docs/fleet.md "Releases") with real processes: releases published with `release publish` (real gpg
// keys, a real ledger), hosts' signed reports carrying the sha256 they verified, and the real
// hook-server joining the two in GET /fleet/APP/releases and the /releases/APP page; `release
// history --fleet` and `release rollback --list --fleet` count the hosts. A ledger that stops
// verifying shows as an error, never as releases; hostile names are shown escaped.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { loadSigningKey, signDetached } from '../../../lib/release/format/signature.ts';
import { hostId, report } from '../../fixtures/fleet-requests.ts';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';
import { runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const FLEET_SECRET = `fleet-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `secret-${randomUUID()}`, HOOK_TOKEN: TOKEN, FLEET_APP: FLEET_SECRET };
const HOSTILE_REPO = '<img src=x onerror=alert(1)>\u001b[31m';

const publish = (w: World, version: string, repo = 'octo/app') =>
  w.publish(version, { source: { repo, ref: `refs/tags/v${version}`, commit: 'a'.repeat(40) } });

const ledgerEntries = (w: World) =>
  readFileSync(path.join(w.updates, 'ledger.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
const shaOf = (w: World, version: string) =>
  ledgerEntries(w).find((e) => e.action === 'publish' && e.version === version).sha256 as string;

async function postReport(server: Server, body: unknown) {
  const text = JSON.stringify(body);
  const res = await fetch(`${server.url}/fleet/reports`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...signRequest(FLEET_SECRET, 'POST', '/fleet/reports', { body: text }),
    },
    body: text,
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

async function getReleases(
  server: Server,
  headers = signRequest(FLEET_SECRET, 'GET', '/fleet/my-app/releases'),
  query = '',
) {
  const res = await fetch(`${server.url}/fleet/my-app/releases${query}`, { headers });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

test('GET /fleet/APP/releases, the Releases page and release history --fleet join the ledger with the hosts', async () => {
  const w = await makeWorld();
  const dir = tmpDir();
  let server: Server | undefined;
  try {
    await publish(w, '1.0', HOSTILE_REPO);
    await publish(w, '1.1');
    await publish(w, '1.2');
    const back = await runScript('release', [
      'rollback',
      'my-app',
      '--to',
      w.updates,
      '--version',
      '1.1',
      '--key',
      w.secretKey,
      '--passphrase-file',
      w.passFile,
    ]);
    assert.is(back.exitCode, 0, back.stderr);
    const config = writeConfig(dir, { repos: { 'octo/site': {} } });
    writeFileSync(
      config,
      `${readFileSync(config, 'utf8')}fleet:\n  my-app:\n    secret: env:FLEET_APP\n    ledger: ${w.updates}\n    keys: ${w.pubAsc}\n`,
    );
    server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    const [a, b, c, d] = [hostId(), hostId(), hostId(), hostId()];
    const app = { app: 'my-app', seq: 4, reason: '', seconds: 1 };
    const reports = [
      report(a, { ...app, version: '1.1', previous: '1.2', sha256: shaOf(w, '1.1') }),
      report(b, { ...app, version: '1.1', previous: '1.0', sha256: shaOf(w, '1.1') }),
      report(c, { ...app, version: '1.1', previous: '1.0', sha256: 'f'.repeat(64) }),
      report(d, { ...app, version: '9.9', previous: '1.1', result: 'failed', reason: 'boom' }),
    ];
    for (const r of reports) assert.is((await postReport(server, r)).status, 202);
    // A digest that is not one is refused and not kept.
    const bad = await postReport(server, report(hostId(), { ...app, version: '1.1', sha256: 'zz' }));
    assert.is(bad.status, 400);
    assert.match(bad.json.error, /sha256 must be 64 lowercase hex/);

    const { status, json } = await getReleases(server);
    assert.is(status, 200, JSON.stringify(json));
    assert.is(json.hosts, 4, 'the refused report was not kept');
    assert.equal(
      { entries: json.ledger.entries, error: json.ledger.error, head: json.ledger.head },
      { entries: 4, error: null, head: 4 },
    );
    const rows = Object.fromEntries(json.releases.map((r: any) => [r.version, r]));
    assert.equal(
      json.releases.map((r: any) => [r.version, r.state]),
      [
        ['1.2', 'rolled back'],
        ['1.1', 'current'],
        ['1.0', 'previous'],
      ],
    );
    assert.equal(
      [rows['1.1'].hosts, rows['1.1'].verified, rows['1.1'].mismatched, rows['1.1'].unknown, rows['1.1'].held_by_all],
      [3, 2, 1, 0, true],
    );
    assert.equal([rows['1.0'].hosts, rows['1.0'].held_by_all], [0, false]);
    assert.equal(
      rows['1.1'].moves.map((m: any) => [m.n, m.action, m.from]),
      [[4, 'rollback', '1.2']],
    );
    assert.equal(
      json.unlisted.map((u: any) => [u.version, u.hosts, u.results.failed]),
      [['9.9', 1, 1]],
    );
    assert.is(rows['1.0'].source.repo, HOSTILE_REPO, 'JSON carries the text as stored');
    assert.equal(
      json.versions.map((v: any) => [v.version, v.hosts, v.held_by_all]),
      [
        ['1.2', 0, false],
        ['1.1', 3, true],
        ['1.0', 0, false],
      ],
      'every release a host runs or came from, for the rollback picker',
    );
    const paged = await getReleases(
      server,
      signRequest(FLEET_SECRET, 'GET', '/fleet/my-app/releases?limit=1&offset=1'),
      '?limit=1&offset=1',
    );
    assert.equal(
      [paged.json.total, paged.json.offset, paged.json.releases.map((r: any) => r.version)],
      [3, 1, ['1.1']],
    );
    const nonsense = await getReleases(
      server,
      signRequest(FLEET_SECRET, 'GET', '/fleet/my-app/releases?limit=x'),
      '?limit=x',
    );
    assert.is(nonsense.status, 400);
    assert.match(nonsense.json.error, /limit must be a whole number/);

    // Read with the status page's token as well; nothing without either; no other path below.
    assert.is((await getReleases(server, { Authorization: `Bearer ${TOKEN}` } as any)).status, 200);
    assert.is((await getReleases(server, {} as any)).status, 401);
    assert.is((await fetch(`${server.url}/fleet/my-app/releases/x`)).status, 404);
    assert.is((await fetch(`${server.url}/fleet/other/releases`)).status, 404);

    const page = await fetch(`${server.url}/releases/my-app`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.is(page.status, 200);
    const html = await page.text();
    assert.ok(!html.includes('<img'), 'the hostile repo is escaped on the page');
    assert.ok(!html.includes('\u001b'), 'no raw ESC on the page');
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(html, /2 verified, <strong class="error">1 another digest<\/strong>/);
    assert.match(html, /rolled back to it from <bdi>1\.2<\/bdi>/);
    assert.is((await fetch(`${server.url}/releases/my-app`)).status, 401, 'the page needs a session or the token');
    assert.match(
      await (await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text(),
      /href="\/releases\/my-app">Releases<\/a>/,
    );

    const fleetFlags = ['--fleet', server.url, '--fleet-secret', 'env:FLEET_APP'];
    const h = await runScript(
      'release',
      ['history', 'my-app', '--from', w.updates, '--keys', w.pubAsc, ...fleetFlags],
      { env: { FLEET_APP: FLEET_SECRET } },
    );
    assert.is(h.exitCode, 0, h.stderr);
    assert.match(h.stdout, /4 hosts report/);
    assert.match(h.stdout, /1\.1 .*3 hosts \(2 verified, 1 ANOTHER DIGEST, held by all\)/);
    assert.ok(!h.stdout.includes('\u001b'), 'no raw ESC on the terminal');
    const list = await runScript(
      'release',
      ['rollback', 'my-app', '--to', w.updates, '--keys', w.pubAsc, '--list', '--json', ...fleetFlags],
      { env: { FLEET_APP: FLEET_SECRET } },
    );
    assert.is(list.exitCode, 0, list.stderr);
    assert.equal(
      JSON.parse(list.stdout).map((r: any) => [r.version, r.fleet.hosts, r.fleet.held_by_all]),
      [['1.0', 0, false]],
    );
    const wrong = await runScript(
      'release',
      ['history', 'my-app', '--from', w.updates, '--keys', w.pubAsc, '--fleet', server.url, '--fleet-secret', 'env:X'],
      { env: { X: 'not-the-secret' } },
    );
    assert.is(wrong.exitCode, 2, wrong.stderr);
    assert.match(wrong.stderr, /--fleet-secret is not the secret of app my-app/);

    // An entry removed and the ledger signed again with the valid key: only the chain tells, and
    // the view shows the error and the hosts, never the entries.
    const lines = readFileSync(path.join(w.updates, 'ledger.jsonl'), 'utf8').trim().split('\n');
    const text = Buffer.from(`${[lines[0], ...lines.slice(2)].join('\n')}\n`);
    writeFileSync(path.join(w.updates, 'ledger.jsonl'), text);
    const key = await loadSigningKey(w.secretKey, w.passFile);
    writeFileSync(path.join(w.updates, 'ledger.jsonl.sig'), await signDetached(key, { data: text }));
    const broken = await getReleases(server);
    assert.is(broken.status, 200);
    assert.match(broken.json.ledger.error, /ledger entry 2/);
    assert.equal(broken.json.releases, []);
    assert.equal(broken.json.unlisted.map((u: any) => u.version).sort(), ['1.1', '9.9']);
    const brokenPage = await (
      await fetch(`${server.url}/releases/my-app`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).text();
    assert.match(brokenPage, /does not verify: <bdi>ledger entry 2/);
  } finally {
    await server?.stop();
    await w.server.close();
  }
});

test.run();
