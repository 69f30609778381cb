// `shipkit fleet forget`'s client (lib/release/rollout/fleet-client.ts): the request it signs, named hosts
// sent in batches the route takes, hook-server's answers mapped to errors that say what to fix,
// and nothing sent for a wrong argument. hook-server's side is test/e2e/hook-server/fleet-forget.test.ts.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, RemoteError, ValidationError } from '../../../../lib/core/errors.ts';
import { createRequestVerifier, sha256Hex } from '../../../../lib/http/signing.ts';
import { fleetBase, forgetHosts } from '../../../../lib/release/rollout/fleet-client.ts';

const SECRET = 'fleet-secret';
const hostId = () => randomBytes(16).toString('hex');

interface Sent {
  url: string;
  body: any;
}

/** A fetch that checks the signature as hook-server does and answers `answer(body)`. */
function fakeFleet(
  answer: (body: any) => { status: number; json: unknown } = (b) => ({
    status: 200,
    json: { ok: true, forgotten: b.hosts?.length ?? 4 },
  }),
) {
  const sent: Sent[] = [];
  const verifier = createRequestVerifier(SECRET);
  const fetch = (async (input: URL | string, init: RequestInit = {}) => {
    const url = new URL(String(input));
    const text = String(init.body);
    // As node's IncomingMessage hands them to hook-server: names in lower case.
    const headers = Object.fromEntries(
      Object.entries(init.headers as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
    );
    const verdict = verifier.verify('POST', url.pathname, headers, {
      bodySha256: sha256Hex(Buffer.from(text)),
    });
    assert.ok(verdict.ok, `signed: ${JSON.stringify(verdict)}`);
    const body = JSON.parse(text);
    sent.push({ url: url.href, body });
    const { status, json } = answer(body);
    return new Response(JSON.stringify(json), { status, headers: { 'Content-Type': 'application/json' } });
  }) as typeof globalThis.fetch;
  return { fetch, sent };
}

test('named hosts: signed POST /fleet/forget under the --fleet path, 1000 a request, the counts added', async () => {
  const fleet = fakeFleet();
  const hosts = Array.from({ length: 2500 }, hostId);
  const forgotten = await forgetHosts({
    fleet: 'http://ci.example/hooks',
    app: 'web',
    secret: SECRET,
    hosts,
    fetch: fleet.fetch,
  });
  assert.is(forgotten, 2500);
  assert.equal(
    fleet.sent.map((s) => [s.url, s.body.app, s.body.hosts.length]),
    [
      ['http://ci.example/hooks/fleet/forget', 'web', 1000],
      ['http://ci.example/hooks/fleet/forget', 'web', 1000],
      ['http://ci.example/hooks/fleet/forget', 'web', 500],
    ],
  );
  assert.equal(
    fleet.sent.flatMap((s) => s.body.hosts),
    hosts,
  );
});

test('days silent: one request with silent_for_days', async () => {
  const fleet = fakeFleet();
  assert.is(
    await forgetHosts({ fleet: 'http://ci.example', app: 'web', secret: SECRET, silentForDays: 7, fetch: fleet.fetch }),
    4,
  );
  assert.equal(fleet.sent[0].body, { app: 'web', silent_for_days: 7 });
});

test('a wrong argument sends nothing', async () => {
  const fleet = fakeFleet();
  const cases: Array<[Parameters<typeof forgetHosts>[0], RegExp]> = [
    [{ fleet: 'http://x', app: 'web', secret: SECRET, hosts: ['ABC'] }, /"ABC" is not a host id/],
    [{ fleet: 'http://x', app: 'web', secret: SECRET, hosts: [] }, /at least one host/],
    [{ fleet: 'http://x', app: 'web', secret: SECRET }, /not both/],
    [{ fleet: 'http://x', app: 'web', secret: SECRET, hosts: [hostId()], silentForDays: 3 }, /not both/],
    [{ fleet: 'http://x', app: 'web', secret: SECRET, silentForDays: 0 }, /from 1 to 36500/],
    [{ fleet: 'http://x', app: '../web', secret: SECRET, silentForDays: 3 }, /app name/],
    [{ fleet: 'ftp://x', app: 'web', secret: SECRET, silentForDays: 3 }, /http or https/],
    [{ fleet: 'not a url', app: 'web', secret: SECRET, silentForDays: 3 }, /Invalid --fleet/],
  ];
  for (const [options, message] of cases) {
    try {
      await forgetHosts({ ...options, fetch: fleet.fetch });
      assert.unreachable(String(message));
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  }
  assert.is(fleet.sent.length, 0);
});

test("hook-server's refusals say what to fix", async () => {
  const cases: Array<[number, unknown, new (...args: any[]) => Error, RegExp]> = [
    [401, { error: 'unauthorized' }, ConfigError, /--fleet-secret is not the secret of app web/],
    [404, { error: 'unknown app' }, ConfigError, /does not know app web \(404\)/],
    [405, { error: 'method not allowed' }, ConfigError, /has no POST \/fleet\/forget \(405\): upgrade it/],
    [
      400,
      { error: 'forget silent_for_days must be …' },
      ValidationError,
      /refused the request: forget silent_for_days/,
    ],
    [503, { error: 'could not store it, try again' }, RemoteError, /answered 503: could not store it/],
    [200, { ok: true }, RemoteError, /without the number of hosts forgotten/],
  ];
  for (const [status, json, type, message] of cases) {
    const fleet = fakeFleet(() => ({ status, json }));
    try {
      await forgetHosts({
        fleet: 'http://ci.example',
        app: 'web',
        secret: SECRET,
        silentForDays: 3,
        fetch: fleet.fetch,
      });
      assert.unreachable(String(status));
    } catch (error) {
      assert.instance(error, type, String(status));
      assert.match((error as Error).message, message);
    }
  }
});

test('hook-server not reachable: a RemoteError naming it', async () => {
  try {
    await forgetHosts({ fleet: 'http://127.0.0.1:9', app: 'web', secret: SECRET, silentForDays: 3 });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, RemoteError);
    assert.match((error as Error).message, /Could not reach hook-server at http:\/\/127\.0\.0\.1:9/);
  }
});

test('fleetBase: a trailing slash so that fleet/… goes below a prefix', () => {
  assert.is(fleetBase('http://ci.example/hooks').href, 'http://ci.example/hooks/');
  assert.is(fleetBase('https://ci.example').href, 'https://ci.example/');
});

test.run();
