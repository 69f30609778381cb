// @deno
// Ending status-page sessions on a real hook-server child: a cookie copied before logout opens
// nothing afterwards, also after a restart; `hook-server --end-sessions`, run as its own process,
// ends the live sessions of a running server at once (no restart), and logging in again works;
// forged, altered and previous-format cookies are refused and cleared.
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAKE_BUILD, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';
import { logIn } from '../../fixtures/session.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const CLEARED = 'shipkit_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict';

function setup(): { config: string; data: string } {
  const dir = tmpDir();
  return { config: writeConfig(dir, { repos: { 'octo/site': {} } }), data: path.join(dir, 'data') };
}

const start = (config: string): Promise<Server> =>
  startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });

/** The status page as a browser asks for it, with a cookie. */
async function page(server: Server, cookie: string) {
  const res = await fetch(`${server.url}/`, { headers: { Accept: HTML, Cookie: cookie }, redirect: 'manual' });
  return { status: res.status, setCookie: res.headers.get('set-cookie'), body: await res.text() };
}

/** The JSON read API with a cookie (no bearer token). */
async function api(server: Server, cookie: string): Promise<number> {
  const res = await fetch(`${server.url}/jobs`, { headers: { Cookie: cookie } });
  await res.arrayBuffer();
  return res.status;
}

const login = (server: Server) => logIn(server, TOKEN);

async function logout(server: Server, cookie: string) {
  const res = await fetch(`${server.url}/logout`, { method: 'POST', headers: { Cookie: cookie }, redirect: 'manual' });
  await res.arrayBuffer();
  return { status: res.status, setCookie: res.headers.get('set-cookie') };
}

function assertSignedIn(answer: { status: number; body: string }, what: string) {
  assert.is(answer.status, 200, what);
  assert.match(answer.body, 'octo/site', what);
  assert.match(answer.body, '<form method="post" action="/logout">', what);
}

function assertLoginForm(answer: { status: number; body: string; setCookie: string | null }, what: string) {
  assert.is(answer.status, 401, what);
  assert.match(answer.body, '<form class="login" method="post" action="/login">', what);
  assert.not.match(answer.body, 'octo/site', `${what}: nothing of the jobs`);
  assert.is(answer.setCookie, CLEARED, `${what}: the dead cookie is cleared`);
}

test('logout ends the session on the server: a copy of the cookie gets the login form, and still after a restart; another session lives on', async () => {
  const { config, data } = setup();
  let server = await start(config);
  try {
    const copied = await login(server);
    const other = await login(server);
    assert.is.not(copied, other);
    assertSignedIn(await page(server, copied), 'signed in');
    assert.is(await api(server, copied), 200, 'the cookie opens the JSON API too');

    const out = await logout(server, copied);
    assert.is(out.status, 303);
    assert.is(out.setCookie, CLEARED);
    // The browser dropped its cookie; a copy of it (another tab's, a stolen one) is sent anyway.
    assertLoginForm(await page(server, copied), 'the copied cookie after logout');
    assert.is(await api(server, copied), 401, 'nor the JSON API');
    assertSignedIn(await page(server, other), 'another session is not ended');
    const file = JSON.parse(readFileSync(path.join(data, 'ended-sessions.json'), 'utf8'));
    assert.equal(Object.keys(file.ended), [copied.split('=')[1].split('.')[0]], 'the one session id written down');

    assert.is(await server.stop(), 0);
    server = await start(config);
    assertLoginForm(await page(server, copied), 'the copied cookie after a restart');
    assert.is(await api(server, copied), 401, 'the JSON API after a restart');
    assertSignedIn(await page(server, other), 'the other session after a restart');
    assertSignedIn(await page(server, await login(server)), 'a new login after the restart');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('hook-server --end-sessions, as its own process, ends the live sessions of a running server at once; logging in again works', async () => {
  const { config, data } = setup();
  const server = await start(config);
  try {
    const first = await login(server);
    const second = await login(server);
    assertSignedIn(await page(server, first), 'before');
    assertSignedIn(await page(server, second), 'before');

    const ended = await runScript('hook-server', ['--end-sessions', '--config', config], { env });
    assert.is(ended.exitCode, 0, ended.stderr);
    assert.match(ended.stdout + ended.stderr, 'are ended');
    assert.ok(JSON.parse(readFileSync(path.join(data, 'ended-sessions.json'), 'utf8')).endedBefore > 0);

    // No wait and no restart: the next request is refused.
    assertLoginForm(await page(server, first), 'first session');
    assertLoginForm(await page(server, second), 'second session');
    assert.is(await api(server, first), 401);
    // The bearer token is untouched (token: did not change); a new login works.
    const bearer = await fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.is(bearer.status, 200);
    await bearer.arrayBuffer();
    assertSignedIn(await page(server, await login(server)), 'a login after --end-sessions');
    assert.match(server.output(), /listening/);
    assert.not.match(server.output(), /cannot read/, 'the server read the file the command wrote');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('hook-server --end-sessions with a config whose data folder was never made: exit 1, says so, makes nothing', async () => {
  const { config, data } = setup();
  const ended = await runScript('hook-server', ['--end-sessions', '--config', config], { env });
  assert.is(ended.exitCode, 1, ended.stderr);
  assert.match(ended.stderr, `The data folder ${data} does not exist`);
  assert.is(ended.stderr.trim().split('\n').length, 1, ended.stderr);
});

test('forged, altered, other-token and previous-format cookies get the login form and are cleared', async () => {
  const { config } = setup();
  const server = await start(config);
  try {
    const cookie = await login(server);
    const [id, issued, mac] = cookie.split('=')[1].split('.');
    const flip = (text: string) => `${text.slice(0, -1)}${text.endsWith('A') ? 'B' : 'A'}`;
    // As the previous release made it: EXPIRY.MAC under the token's v1 key, and not expired.
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const v1 = createHmac('sha256', createHmac('sha256', TOKEN).update('shipkit status page session v1').digest())
      .update(`session.${expiry}`)
      .digest('base64url');
    for (const [what, value] of [
      ['id altered', `${flip(id)}.${issued}.${mac}`],
      ['issue time moved', `${id}.${Number(issued) + 1}.${mac}`],
      ['MAC altered', `${id}.${issued}.${flip(mac)}`],
      ['the token itself', TOKEN],
      ['previous format', `${expiry}.${v1}`],
    ] as const) {
      assertLoginForm(await page(server, `shipkit_session=${value}`), what);
      assert.is(await api(server, `shipkit_session=${value}`), 401, what);
    }
    // A forged cookie is not written down at logout (strangers cannot grow the file).
    assert.is((await logout(server, `shipkit_session=${id}.${issued}.${flip(mac)}`)).status, 303);
    assertSignedIn(await page(server, cookie), 'the real cookie still works');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test("a leaked token: --end-sessions --new-token replaces token:'s file; the running server refuses the old token and its sessions within a second", async () => {
  const { config } = setup();
  const tokenFile = path.join(path.dirname(config), 'read-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o640 });
  writeFileSync(config, readFileSync(config, 'utf8').replace('token: env:HOOK_TOKEN', 'token: file:read-token'));
  const server = await start(config);
  try {
    const cookie = await login(server);
    assertSignedIn(await page(server, cookie), 'before');
    const rotated = await runScript('hook-server', ['--end-sessions', '--new-token', '--config', config], { env });
    assert.is(rotated.exitCode, 0, rotated.stderr);
    const fresh = rotated.stdout.trim();
    assert.match(fresh, /^[0-9a-f]{64}$/, 'the new token, printed once');
    assert.is(readFileSync(tokenFile, 'utf8'), `${fresh}\n`);
    assert.is(statSync(tokenFile).mode & 0o777, 0o640, "the file's mode is kept");
    assert.not.match(rotated.stderr, fresh, 'not in the log');
    await new Promise((r) => setTimeout(r, 1100)); // the server looks at the file at most once a second
    const bearer = (token: string) =>
      fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${token}` } }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    assert.is(await bearer(TOKEN), 401, 'the leaked token is refused, no restart');
    assert.is(await bearer(fresh), 200);
    assert.is((await page(server, cookie)).status, 401, 'its session is ended');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('--new-token with token: env:NAME is refused, naming what to do; nothing is ended', async () => {
  const { config, data } = setup();
  const refused = await runScript('hook-server', ['--end-sessions', '--new-token', '--config', config], { env });
  assert.is(refused.exitCode, 2);
  assert.match(refused.stderr, /--new-token writes token:'s file, but token: in .* is not file:PATH; change it there/);
  assert.not.ok(existsSync(path.join(data, 'ended-sessions.json')), 'nothing written');
});

test.run();
