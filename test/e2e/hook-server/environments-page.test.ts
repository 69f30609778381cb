// @deno
// A real hook-server with an `apps:` block of two folder DESTs (VERSION files written by hand, real
// approver keys, one with a hostile uid): GET /environments as the read API guards it, and the
// status page's Environments section after login, escaped; with `ui: public` strangers see the
// count, not who; without `apps:` neither the route nor the section.
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `secret-${randomUUID()}`, HOOK_TOKEN: TOKEN };
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const HOSTILE_NAME = '<script>alert(1)</script>\u202e';
const SHA = 'e'.repeat(64);

/** Two approvers' public keys: alice, and one whose name is markup. */
async function approverKeys(dir: string): Promise<{ files: string[]; uids: string[] }> {
  const openpgp = await import('openpgp');
  const people = [
    { name: 'alice', email: 'alice@example.com' },
    { name: HOSTILE_NAME, email: 'mallory@example.com' },
  ];
  const files: string[] = [];
  const uids: string[] = [];
  for (const [i, person] of people.entries()) {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [person],
      format: 'armored',
    });
    files.push(path.join(dir, `approver-${i}.asc`));
    writeFileSync(files[i], publicKey);
    uids.push((await openpgp.readKey({ armoredKey: publicKey })).getUserIDs()[0]);
  }
  return { files, uids };
}

/** hook-server with `ui:` and, unless `apps` is false, my-app's staging (1.4) and production (1.3, ROLLOUT 25). */
async function start(ui: string, apps = true): Promise<{ server: Server; uids: string[]; dir: string }> {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  appendFileSync(config, `ui: ${ui}\n`);
  if (!apps) return { server: await startHook(config), uids: [], dir };
  const { files, uids } = await approverKeys(dir);
  for (const [name, version, more] of [
    ['staging', '1.4', 'SEQ 12\n'],
    ['production', '1.3', 'SEQ 9\nROLLOUT 25\n'],
  ]) {
    mkdirSync(path.join(dir, name));
    writeFileSync(
      path.join(dir, name, 'VERSION'),
      `CURRENT ${version} my-app-linux-${version}.tar.gz\nSHA256 ${version === '1.4' ? SHA : 'f'.repeat(64)}\n${more}`,
    );
  }
  appendFileSync(
    config,
    `apps:
  my-app:
    environments:
      staging: { to: staging }
      production:
        to: production
        approvals: { required: 1, from: [${files.join(', ')}] }
        windows: [{ deny: "2020-01-01 00:00 - 2099-01-01 00:00" }]
`,
  );
  return { server: await startHook(config), uids, dir };
}

const startHook = (config: string) =>
  startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, redirect: 'manual' });
  return { status: res.status, body: await res.text() };
}

async function login(url: string): Promise<string> {
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: TOKEN }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
  assert.is(res.status, 303, await res.text());
  return res.headers.get('set-cookie')!.split(';')[0];
}

test('GET /environments with the token or a session; the section after login, every text escaped', async () => {
  const { server, uids, dir } = await start('token');
  try {
    const anonymous = await get(`${server.url}/environments`);
    assert.is(anonymous.status, 401, anonymous.body);
    assert.is((await get(`${server.url}/environments`, { Authorization: 'Bearer wrong' })).status, 401);
    const posted = await fetch(`${server.url}/environments`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    assert.is(posted.status, 405);

    const api = await get(`${server.url}/environments`, { Authorization: `Bearer ${TOKEN}` });
    assert.is(api.status, 200, api.body);
    const json = JSON.parse(api.body);
    assert.is(json.apps.length, 1);
    assert.is(json.apps[0].app, 'my-app');
    const [staging, production] = json.apps[0].environments;
    assert.equal(
      [staging.name, staging.to, staging.current, staging.window.open, staging.waits],
      ['staging', path.join(dir, 'staging'), { version: '1.4', rollout: 100, seq: 12 }, true, null],
    );
    assert.equal([production.current, production.window.open], [{ version: '1.3', rollout: 25, seq: 9 }, false]);
    assert.is(production.window.reason, 'deny window "2020-01-01 00:00 - 2099-01-01 00:00" (UTC)');
    assert.equal(production.waits, {
      version: '1.4',
      sha256: SHA,
      from: 'staging',
      required: 1,
      approved: [],
      awaited: uids,
      refused: [],
      users: [],
      error: null,
    });

    const cookie = await login(server.url);
    const page = await get(`${server.url}/`, { Accept: HTML, Cookie: cookie });
    assert.is(page.status, 200);
    assert.match(page.body, '<h2>Environments</h2>');
    assert.match(page.body, '<h3><bdi>my-app</bdi></h3>');
    assert.match(page.body, '<strong><bdi>1.3</bdi></strong> <span class="state state-running">ROLLOUT 25 %</span>');
    assert.match(page.body, '<span class="state state-queued">closed</span>: <bdi>deny window &quot;2020-01-01');
    assert.match(page.body, '<span class="state state-queued">0 of 1 approvals</span>');
    assert.match(
      page.body,
      'awaited: <bdi>alice &lt;alice@example.com&gt;</bdi>, <bdi>&lt;script&gt;alert(1)&lt;/script&gt;&lt;U+202E&gt; &lt;mallory@example.com&gt;</bdi>',
    );
    assert.match(page.body, '<code><bdi>shipkit approve my-app 1.4 --env production --key KEY</bdi></code>');
    assert.not.match(page.body, '<script>alert');
    assert.not.match(page.body, '\u202e');
    // The JSON session cookie opens the route too; one repo's list has no section.
    assert.is((await get(`${server.url}/environments`, { Cookie: cookie })).status, 200);
    const one = await get(`${server.url}/?repo=octo/site`, { Accept: HTML, Cookie: cookie });
    assert.not.match(one.body, '<h2>Environments</h2>');
  } finally {
    await server.stop();
  }
});

test('ui: public shows strangers the releases and the count, not who; without apps: no route, no section', async () => {
  const { server } = await start('public');
  const { server: bare } = await start('public', false);
  try {
    const page = await get(`${server.url}/`, { Accept: HTML });
    assert.is(page.status, 200);
    assert.match(page.body, '0 of 1 approvals');
    assert.not.match(page.body, 'alice@example.com');
    assert.not.match(page.body, 'shipkit approve');
    assert.is((await get(`${server.url}/environments`)).status, 401, 'the JSON is the read API');

    assert.is((await get(`${bare.url}/environments`, { Authorization: `Bearer ${TOKEN}` })).status, 404);
    assert.not.match((await get(`${bare.url}/`, { Accept: HTML })).body, 'Environments');
  } finally {
    await Promise.all([server.stop(), bare.stop()]);
  }
});

test.run();
