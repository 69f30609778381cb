// @deno
// hook-server's fleet routes (docs/design.md) with the real hook-server script: signed host
// reports kept on disk before their 202 and read back after a restart, GET /fleet/APP for
// `release rollout`, rollout states, the status page's Fleet section and /metrics; and every
// hostile request refused with its status, not counted, and not written.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { hostCredential } from '../../../lib/release/format/fleet-report.ts';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { hostId, report as hostReport } from '../../fixtures/fleet-requests.ts';
import { runCommand, runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const FLEET_SECRET = `fleet-${randomUUID()}`;
const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, FLEET_WEB: FLEET_SECRET };

/** A hook-server whose shipkit.yml has `fleet: web:` with its own secret. */
function fleetConfig(dir: string): string {
  const file = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n`);
  return file;
}

/** A host's report as launchfit sends it, with its reason and how long the update took. */
const report = (host: string, fields: Record<string, unknown> = {}) =>
  hostReport(host, { reason: '', seconds: 2.5, ...fields });

/** POST with the body signed as docs/design.md (five lines); `sign` changes what is signed. */
async function post(
  server: Server,
  route: string,
  body: unknown,
  { secret = FLEET_SECRET, raw, headers }: { secret?: string; raw?: string; headers?: Record<string, string> } = {},
) {
  const text = raw ?? JSON.stringify(body);
  const signed = signRequest(secret, 'POST', route, { body: text });
  const res = await fetch(`${server.url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...signed, ...headers },
    body: text,
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as any, headers: { ...signed, ...headers } };
}

async function getFleet(
  server: Server,
  app = 'web',
  headers: Record<string, string> = signRequest(FLEET_SECRET, 'GET', `/fleet/${app}`),
) {
  const res = await fetch(`${server.url}/fleet/${app}`, { headers });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

async function metrics(server: Server): Promise<string> {
  return (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
}

test('signed reports are kept (latest per host), read back by GET /fleet/APP, shown on the status page and in /metrics, and survive a restart', async () => {
  const dir = tmpDir();
  const config = fleetConfig(dir);
  const [a, b, c] = [hostId(), hostId(), hostId()];
  let server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    assert.is(
      (await post(server, '/fleet/reports', report(a, { result: 'running', version: '1.0', previous: '', seq: 2 })))
        .status,
      202,
    );
    // a is seen: from now on only its own credential speaks for it.
    const ownKey = { secret: hostCredential(FLEET_SECRET, a) };
    const answers = await Promise.all([
      post(server, '/fleet/reports', report(a), ownKey),
      post(
        server,
        '/fleet/reports',
        report(b, { result: 'rolled_back', reason: 'health check /healthz answered 500' }),
      ),
      post(server, '/fleet/reports', report(c, { version: '1.0', result: 'running', bucket: 0.001 })), // claims another bucket
    ]);
    assert.equal(answers.shift()!.json, { ok: true });
    for (const answer of answers) {
      // Signed with the app's secret: each host is enrolled, and its own credential is in the answer.
      assert.equal([answer.status, answer.json.ok], [202, true]);
      assert.match(answer.json.credential, /^[0-9a-f]{64}$/);
    }
    // An older report of host a (lower seq) is answered but does not replace the kept one.
    assert.is(
      (await post(server, '/fleet/reports', report(a, { version: '0.9', seq: 1, result: 'running' }), ownKey)).status,
      202,
    );
    const rollout = {
      app: 'web',
      version: '1.1',
      seq: 3,
      step: 2,
      percent: 10,
      steps: [1, 10, 100],
      state: 'halted',
      reason: 'failures: 1 of 2, allowed 0',
      at: new Date().toISOString(),
    };
    assert.is((await post(server, '/fleet/rollouts', rollout)).status, 202);

    const fleet = await getFleet(server);
    assert.is(fleet.status, 200);
    assert.is(fleet.json.app, 'web');
    const byHost = new Map((fleet.json.hosts as any[]).map((h) => [h.host, h]));
    assert.equal([byHost.get(a).version, byHost.get(a).result, byHost.get(a).seq], ['1.1', 'updated', 3]);
    assert.equal([byHost.get(b).result, byHost.get(b).reason], ['rolled_back', 'health check /healthz answered 500']);
    assert.is(byHost.get(c).bucket, rolloutBucket(c, '1.0'), 'the bucket is computed from the host id');
    assert.is(byHost.get(c).claimed_bucket, 0.001, 'what the host claimed is kept beside it');
    assert.match(byHost.get(a).at, /^\d{4}-\d\d-\d\dT/);
    const { app: _app, ...posted } = rollout;
    const { received, ...kept } = fleet.json.rollout;
    assert.equal(kept, posted, 'the rollout as posted, without its app');
    assert.match(received, /^\d{4}-\d\d-\d\dT/);

    const page = await (await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
    assert.match(page, '<h2>Fleet</h2>');
    assert.match(page, '(3 hosts)');
    assert.match(page, 'step 2 of 3 (10 %)');
    assert.match(page, 'health check /healthz answered 500');
    assert.match(page, '1 host reported a bucket that is not the one their id gives.');
    // A signed-in viewer's GET /fleet/APP needs no signature (the status page's session or the read token).
    assert.is((await getFleet(server, 'web', { Authorization: `Bearer ${TOKEN}` })).status, 200);

    const text = await metrics(server);
    assert.match(text, 'shipkit_fleet_reports_total{app="web",result="updated"} 1');
    assert.match(text, 'shipkit_fleet_reports_total{app="web",result="running"} 3');
    assert.match(text, 'shipkit_fleet_hosts{app="web",version="1.1",result="updated"} 1');
    assert.match(text, 'shipkit_fleet_hosts{app="web",version="1.1",result="rolled_back"} 1');
    assert.match(text, 'shipkit_fleet_hosts{app="web",version="1.0",result="running"} 1');
    assert.is(await server.stop(), 0);

    server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    const after = await getFleet(server);
    assert.equal(after.json.hosts, fleet.json.hosts, 'every acknowledged report is back after a restart');
    assert.equal(after.json.rollout, fleet.json.rollout);
  } finally {
    await server.stop();
  }
});

/**
 * POST a body of `size` bytes chunked, without a Content-Length (so it cannot be refused before
 * reading), with curl: it reads the answer while it sends, as the server hangs up mid-body.
 */
async function postChunked(url: string, size: number, headers: Record<string, string>): Promise<number | 'reset'> {
  const file = path.join(tmpDir(), 'big.json');
  writeFileSync(file, Buffer.alloc(size, 'x'));
  const args = [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-X',
    'POST',
    '-H',
    'Transfer-Encoding: chunked',
    '-H',
    'Content-Type: application/json',
  ];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const result = await runCommand('curl', [...args, '--data-binary', `@${file}`, `${url}/fleet/reports`]);
  // 55/56: curl's send or receive failed. The rest of a refused body is never read, so the server
  // closes on a client still sending, which may see the reset before the 413 (hook-server/basics).
  if (result.exitCode === 55 || result.exitCode === 56) return 'reset';
  assert.is(result.exitCode, 0, result.stderr);
  return Number(result.stdout.trim());
}

test("GET /fleet/APP answers a page of the hosts (limit, offset, total) or a step's counts, never every host unasked", async () => {
  const dir = tmpDir();
  const server = await startScript('hook-server', ['--config', fleetConfig(dir), '--listen', '127.0.0.1:0'], { env });
  const signedGet = async (query: string) => {
    const route = `/fleet/web?${query}`;
    const res = await fetch(`${server.url}${route}`, { headers: signRequest(FLEET_SECRET, 'GET', route) });
    return { status: res.status, json: (await res.json().catch(() => null)) as any };
  };
  try {
    const hosts = Array.from({ length: 25 }, () => hostId());
    // Ten on 1.2 (one failed), fifteen still on 1.1.
    for (const [i, host] of hosts.entries()) {
      const fields =
        i < 10 ? { version: '1.2', result: i === 0 ? 'failed' : 'updated', seq: 4 } : { version: '1.1', seq: 3 };
      assert.is((await post(server, '/fleet/reports', report(host, { result: 'running', ...fields }))).status, 202);
    }
    const first = await signedGet('limit=10');
    assert.equal([first.status, first.json.total, first.json.hosts.length, first.json.next_offset], [200, 25, 10, 10]);
    const last = await signedGet('limit=10&offset=20');
    assert.equal([last.json.hosts.length, last.json.next_offset], [5, null]);
    const all = new Set<string>();
    for (let offset: number | null = 0; offset !== null;) {
      const page = await signedGet(`limit=7&offset=${offset}`);
      for (const h of page.json.hosts) all.add(h.host);
      offset = page.json.next_offset;
    }
    assert.is(all.size, 25, 'the pages together hold every host once');

    const counted = await signedGet('step=100&version=1.2&seq=4');
    assert.is(counted.status, 200);
    assert.is(counted.json.hosts, undefined, 'counts, not the list');
    const c = counted.json.counts;
    assert.equal([c.percent, c.expected, c.updated, c.failed, c.pending], [100, 25, 9, 1, 15]);
    assert.equal(
      c.failures.map((f: any) => f.host),
      [hosts[0]],
    );

    for (const [query, message] of [
      ['step=0&version=1.2', /step must be a percent/],
      ['step=101&version=1.2', /step must be a percent/],
      ['step=10&version=..%2Fx', /version must be a release version/],
      ['step=10&version=1.2&seq=-1', /seq must be a whole number/],
      ['limit=10001', /limit must be a whole number from 0 to 10000/],
    ] as const) {
      const refused = await signedGet(query);
      assert.is(refused.status, 400, query);
      assert.match(JSON.stringify(refused.json), message);
    }
  } finally {
    await server.stop();
  }
});

test("one host's credential signing reports for 20,000 other hosts: each refused 401, counted, nothing kept", async () => {
  const dir = tmpDir();
  const server = await startScript('hook-server', ['--config', fleetConfig(dir), '--listen', '127.0.0.1:0'], { env });
  try {
    const mine = hostId();
    assert.is((await post(server, '/fleet/reports', report(mine, { result: 'running', version: '1.0' }))).status, 202);
    const credential = hostCredential(FLEET_SECRET, mine);
    const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))![1]);
    const send = async (n: number) => {
      const statuses = new Map<number, number>();
      for (let start = 0; start < n; start += 100) {
        const batch = await Promise.all(
          Array.from({ length: 100 }, () =>
            post(server, '/fleet/reports', report(hostId(), { result: 'running', version: '1.0' }), {
              secret: credential,
            }),
          ),
        );
        for (const r of batch) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
      return statuses;
    };
    // What is kept is checked exactly below (the registry holds one host); RSS is the coarse guard
    // against a refused report costing memory for good. Warming up: Node's RSS is flat after the
    // first 2,500, Deno's heap grows for some 12,000 (by 70-80 MB) and then stays. The next 7,500
    // then grew it by 0-1 MB (Node) and 1-7 MB (Deno); keeping them as hosts grew it by 3-6 MB
    // (Node) and 35 MB (Deno).
    assert.equal([...(await send(12_500))], [[401, 12_500]]);
    const before = rssKb();
    assert.equal([...(await send(7_500))], [[401, 7_500]]);
    const grownMb = (rssKb() - before) / 1024;
    console.log(`  RSS after 7,500 more forged reports: ${grownMb.toFixed(1)} MB more (printed; bound below)`);
    assert.ok(grownMb < 16, `hook-server grew ${grownMb.toFixed(1)} MB on refused reports`);
    const fleet = await getFleet(server, 'web', signRequest(FLEET_SECRET, 'GET', '/fleet/web'));
    assert.equal(
      [fleet.json.total, fleet.json.hosts.map((h: any) => h.host)],
      [1, [mine]],
      'only the real host is kept',
    );
    assert.match(await metrics(server), 'shipkit_fleet_reports_refused_total{reason="bad_signature"} 20000');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('hostile requests: bad signature, unknown app, huge body, replayed nonce, stale timestamp, malformed; each refused, not counted, not written', async () => {
  const dir = tmpDir();
  const config = fleetConfig(dir);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const good = report(hostId());
    const accepted = await post(server, '/fleet/reports', good);
    assert.is(accepted.status, 202);
    const hostile: string[] = [];
    const hostileReport = () => {
      const r = report(hostId());
      hostile.push(r.host);
      return r;
    };

    const wrong = await post(server, '/fleet/reports', hostileReport(), { secret: 'not-the-secret' });
    assert.equal([wrong.status, wrong.json.error], [401, 'unauthorized']);
    // Another app's secret does not open this app.
    const unknown = await post(server, '/fleet/reports', { ...hostileReport(), app: 'other' });
    assert.equal([unknown.status, unknown.json.error], [404, 'unknown app']);
    // The host's next report, signed with its credential (the only key that speaks for it now), sent twice.
    const next = report(good.host, { seq: 4 });
    const own = await post(server, '/fleet/reports', next, { secret: hostCredential(FLEET_SECRET, good.host) });
    assert.is(own.status, 202);
    const replay = await fetch(`${server.url}/fleet/reports`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...own.headers },
      body: JSON.stringify(next),
    });
    assert.is(replay.status, 401, 'the same signed request again');
    const stale = signRequest(FLEET_SECRET, 'POST', '/fleet/reports', {
      body: JSON.stringify(hostileReport()),
      now: () => Date.now() - 3600_000,
    });
    const staleBody = JSON.stringify(report(hostile.at(-1)!));
    assert.is(
      (await fetch(`${server.url}/fleet/reports`, { method: 'POST', headers: stale, body: staleBody })).status,
      401,
      'an hour-old timestamp',
    );
    const unsigned = await fetch(`${server.url}/fleet/reports`, {
      method: 'POST',
      body: JSON.stringify(hostileReport()),
    });
    assert.is(unsigned.status, 401);
    const declared = await fetch(`${server.url}/fleet/reports`, {
      method: 'POST',
      headers: signRequest(FLEET_SECRET, 'POST', '/fleet/reports'),
      body: JSON.stringify({ ...hostileReport(), reason: 'x'.repeat(5000) }),
    });
    assert.is(declared.status, 413, 'a body over 4 KiB, declared');
    // Refused either way: the too_large count below says the server did, whatever the client saw.
    const undeclared = await postChunked(server.url, 1024 * 1024, signRequest(FLEET_SECRET, 'POST', '/fleet/reports'));
    assert.ok(undeclared === 413 || undeclared === 'reset', `a 1 MiB body, not declared: ${undeclared}`);
    const notJson = await post(server, '/fleet/reports', null, { raw: '{"app":"web",' });
    assert.equal([notJson.status, notJson.json.error], [400, 'body is not JSON']);
    const badHost = await post(server, '/fleet/reports', { ...report('Z'.repeat(32)) });
    assert.is(badHost.status, 400);
    assert.match(badHost.json.error, 'host must be 32 lowercase hex characters');
    const badResult = await post(server, '/fleet/reports', { ...hostileReport(), result: 'exploded' });
    assert.is(badResult.status, 400);
    const badRollout = await post(server, '/fleet/rollouts', {
      app: 'web',
      version: '1.1',
      seq: 1,
      step: 1,
      percent: 0,
      steps: [1],
      state: 'running',
    });
    assert.is(badRollout.status, 400);
    assert.is(
      (await fetch(`${server.url}/fleet/reports`)).status,
      404,
      'GET /fleet/reports names an app that is not configured',
    );
    assert.is((await fetch(`${server.url}/fleet/web`, { method: 'DELETE' })).status, 405);
    assert.is((await getFleet(server, 'web', {})).status, 401, 'GET /fleet/APP unsigned');
    assert.is((await getFleet(server, 'web', signRequest('not-the-secret', 'GET', '/fleet/web'))).status, 401);
    assert.is((await getFleet(server, 'other', signRequest(FLEET_SECRET, 'GET', '/fleet/other'))).status, 404);
    assert.is((await getFleet(server, '..%2Fetc')).status, 404);

    const fleet = await getFleet(server);
    assert.equal(
      (fleet.json.hosts as any[]).map((h) => h.host),
      [good.host],
      'only the good report is kept',
    );
    const log = readFileSync(path.join(dir, 'data', 'fleet', 'fleet.log'), 'utf8');
    for (const host of hostile) assert.not.match(log, host, 'a refused report is not written');
    const text = await metrics(server);
    assert.match(text, 'shipkit_fleet_reports_total{app="web",result="updated"} 2');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="bad_signature"} 2');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="unknown_app"} 1');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="replay"} 1');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="stale"} 1');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="too_large"} 2');
    assert.match(text, 'shipkit_fleet_reports_refused_total{reason="malformed"} 4');
    assert.not.match(server.output(), FLEET_SECRET, 'the fleet secret is never logged');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('without a fleet: block, /fleet/ paths are not there (404) and no DATA/fleet is made', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    assert.is((await post(server, '/fleet/reports', report(hostId()))).status, 404);
    assert.is((await getFleet(server)).status, 404);
    assert.not.ok(readFileSync(path.join(dir, 'data', 'journal', 'jobs.journal'), 'utf8').includes('fleet'));
    let made = true;
    try {
      readFileSync(path.join(dir, 'data', 'fleet', 'fleet.log'));
    } catch {
      made = false;
    }
    assert.not.ok(made);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('a fleet: secret that cannot be read stops hook-server at start with the key named, before it listens', async () => {
  const dir = tmpDir();
  const config = fleetConfig(dir);
  const result = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { ...env, FLEET_WEB: '' },
  });
  assert.is(result.exitCode, 2, result.stderr);
  assert.match(result.stderr, 'fleet.web.secret');
  assert.not.match(result.stderr + result.stdout, 'listening on');
});

test.run();
