// @deno
// Approvals given on the status page (docs/environments.md "Approvals"), real processes, real HTTP
// and gpg keys: users added with `hook-server --add-user`, a named login, the Approve button's
// POST, then `release promote` counts it. Refused with nothing written: no CSRF token, a wrong or
// another session's, a cross-site post, a user not in from:, the publisher, a token session, a form
// for a release that no longer waits (promoted, or a newer one published), a logged-out session.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript, startScript, type Server } from '../../_helpers/common.ts';
import { exportPublic, exportSecret, genKey } from '../../fixtures/launchfit/gpg.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';
import { environmentsApp } from '../../fixtures/release/environments.ts';
import { createSessionKeys } from '../../../lib/web/session.ts';

const TOKEN = `token-${randomUUID()}`;
const HTML = 'text/html,application/xhtml+xml';
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
/** The account that publishes in this test (ledger `by: NAME@HOST`): as a status-page user, the publisher. */
const PUBLISHER = os.userInfo().username;

interface Setup {
  w: World;
  config: string;
  production: string;
  server: Server;
}

/** shipkit.yml with ui_users:, ui_key: and my-app's production approved by alice's key or carol or the publisher. */
async function setUp(): Promise<Setup> {
  const w = await makeWorld();
  mkdirSync(path.join(w.base, 'keys'));
  const alice = await genKey(w.g, 'Alice <alice@example.com>');
  await exportPublic(w.g, alice.fpr, path.join(w.base, 'keys', 'alice.asc'));
  const page = await genKey(w.g, 'shipkit status page <status-page@example.com>');
  await exportSecret(w.g, page.fpr, path.join(w.base, 'ui-secret.asc'));
  await exportPublic(w.g, page.fpr, path.join(w.base, 'keys', 'ui.asc'));
  const production = path.join(w.base, 'production');
  const config = path.join(w.base, 'shipkit.yml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `data: ${path.join(w.base, 'data')}`,
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      'repos: {}',
      'ui_users: ui-users',
      'ui_key: file:ui-secret.asc',
      ...environmentsApp(w, production, [
        `approvals: { required: 1, from: [keys/alice.asc, ui:carol, "ui:${PUBLISHER}"], ui_key: keys/ui.asc }`,
      ]),
      '',
    ].join('\n'),
  );
  for (const [name, password] of [
    ['carol', 'carol password'],
    ['dave', 'dave password'],
    [PUBLISHER, 'publisher password'],
  ]) {
    const added = await runScript('hook-server', ['--add-user', name, '--config', config], { input: `${password}\n` });
    assert.is(added.exitCode, 0, added.stderr);
  }
  assert.not.match(readFileSync(path.join(w.base, 'ui-users'), 'utf8'), 'password', 'hashes only');
  await w.publish('1.4.0');
  const server = await startScript('hook-server', ['--config', config], {
    env: { HOOK_SECRET: `secret-${randomUUID()}`, HOOK_TOKEN: TOKEN },
  });
  return { w, config, production, server };
}

async function login(url: string, fields: Record<string, string>): Promise<{ status: number; cookie?: string }> {
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    headers: FORM,
    redirect: 'manual',
  });
  await res.text();
  return { status: res.status, cookie: res.headers.get('set-cookie')?.split(';')[0] };
}

async function loggedIn(url: string, name: string, password: string): Promise<string> {
  const { status, cookie } = await login(url, { name, password });
  assert.is(status, 303, `${name} logs in`);
  return cookie!;
}

/** The status page as `cookie` sees it, and the Approve form's fields on it (undefined: no button). */
async function approveForm(url: string, cookie: string): Promise<Record<string, string> | undefined> {
  const res = await fetch(`${url}/`, { headers: { Accept: HTML, Cookie: cookie } });
  const html = await res.text();
  assert.is(res.status, 200, html);
  const form = /<form class="approve" method="post" action="\/approve">(.*?)<\/form>/.exec(html)?.[1];
  if (!form) return undefined;
  return Object.fromEntries([...form.matchAll(/name="(\w+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]));
}

async function post(url: string, cookie: string | undefined, fields: Record<string, string>, headers = {}) {
  const res = await fetch(`${url}/approve`, {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    headers: { ...FORM, Accept: HTML, ...(cookie ? { Cookie: cookie } : {}), ...headers },
    redirect: 'manual',
  });
  return { status: res.status, body: await res.text() };
}

const approvalFiles = (s: Setup) =>
  existsSync(path.join(s.production, 'approvals')) ? readdirSync(path.join(s.production, 'approvals')).sort() : [];

const promote = (s: Setup) =>
  runScript('release', [
    'promote',
    'my-app',
    '1.4.0',
    '--from',
    'staging',
    '--to',
    'production',
    '--config',
    s.config,
    '--state',
    path.join(s.w.base, 'st'),
  ]);

test('a user logs in, approves with the button, and release promote counts it', async () => {
  const s = await setUp();
  try {
    const { url } = s.server;
    // Wrong password and unknown user: the same answer, no cookie.
    for (const fields of [
      { name: 'carol', password: 'wrong' },
      { name: 'nobody', password: 'carol password' },
    ]) {
      const refused = await login(url, fields);
      assert.equal([refused.status, refused.cookie], [401, undefined], JSON.stringify(fields));
    }
    const carol = await loggedIn(url, 'carol', 'carol password');
    assert.match(carol, /^shipkit_session=[A-Za-z0-9_-]{22}\.\d+\.carol\.[A-Za-z0-9_-]{43}$/);
    const form = await approveForm(url, carol);
    assert.ok(form, 'carol sees the Approve button');
    assert.equal([form!.app, form!.env, form!.version], ['my-app', 'production', '1.4.0']);
    assert.match(form!.sha256, /^[0-9a-f]{64}$/);

    const before = await promote(s);
    assert.is(before.exitCode, 2, before.stderr);
    assert.match(before.stderr, /needs 1 approval; 0 given/);

    const approved = await post(url, carol, form!, { 'Sec-Fetch-Site': 'same-origin' });
    assert.is(approved.status, 200, approved.body);
    assert.match(approved.body, /carol approved my-app 1\.4\.0 .* for production until .*: 1 of 1 approvals/);
    assert.equal(approvalFiles(s), [
      'my-app-1.4.0-production-ui-carol.json',
      'my-app-1.4.0-production-ui-carol.json.sig',
    ]);

    const promoted = await promote(s);
    assert.is(promoted.exitCode, 0, promoted.stderr);
    assert.match(promoted.stdout, /Promoted my-app 1\.4\.0 .* to production/);
    const ledger = readFileSync(path.join(s.production, 'ledger.jsonl'), 'utf8');
    assert.match(ledger, /approved by carol \(status page\)/);

    const audit = await fetch(`${url}/audit?format=jsonl`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const entries = (await audit.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const entry = entries.find((e) => e.action === 'release.approve');
    assert.ok(entry, 'release.approve in the audit trail');
    assert.equal(
      [entry.subject, entry.detail.user, entry.detail.via, entry.detail.version],
      ['my-app', 'carol', 'status-page', '1.4.0'],
    );

    // The same form again: 1.4.0 no longer waits (production runs it). Then a newer one waits.
    const replayed = await post(url, carol, form!);
    assert.is(replayed.status, 409, replayed.body);
    assert.match(replayed.body, /nothing waits now/);
    await s.w.publish('1.5.0');
    const stale = await post(url, carol, form!);
    assert.is(stale.status, 409, stale.body);
    assert.match(stale.body, /but 1\.5\.0 \(sha256 [0-9a-f]{12}…\) waits now/);
    assert.equal(approvalFiles(s), [
      'my-app-1.4.0-production-ui-carol.json',
      'my-app-1.4.0-production-ui-carol.json.sig',
    ]);
  } finally {
    await Promise.all([s.server.stop(), s.w.server.close()]);
  }
});

test('refused with 403 and nothing written: CSRF, cross-site, not an approver, the publisher, a token or ended session', async () => {
  const s = await setUp();
  try {
    const { url } = s.server;
    const carol = await loggedIn(url, 'carol', 'carol password');
    const form = (await approveForm(url, carol))!;
    const dave = await loggedIn(url, 'dave', 'dave password');
    assert.is(await approveForm(url, dave), undefined, 'dave is not in from: and sees no button');

    const refusals: Array<[string, Promise<{ status: number; body: string }>, number, RegExp]> = [
      ['no CSRF token', post(url, carol, { ...form, csrf: '' }), 403, /not from your session/],
      ['a wrong CSRF token', post(url, carol, { ...form, csrf: 'A'.repeat(43) }), 403, /not from your session/],
      ['cross-site (Sec-Fetch-Site)', post(url, carol, form, { 'Sec-Fetch-Site': 'cross-site' }), 403, /forbidden/],
      ['another origin', post(url, carol, form, { Origin: 'http://evil.example' }), 403, /forbidden/],
      ['no session', post(url, undefined, form), 403, /Only a user logged in with a name and password/],
      ['a bad sha256', post(url, carol, { ...form, sha256: 'x' }), 400, /sha256 is not 64 hex digits/],
    ];
    for (const [what, answer, status, message] of refusals) {
      const { status: got, body } = await answer;
      assert.is(got, status, `${what}: ${body}`);
      assert.match(body, message, what);
    }
    // dave's own session and CSRF token (made here with the read token, as the server makes it): he
    // is not one of the approvers.
    const daveOwn = await post(url, dave, { ...form, csrf: csrfOf(dave) });
    assert.is(daveOwn.status, 403, daveOwn.body);
    assert.match(daveOwn.body, /dave is not one of the approvers of my-app in production/);
    // carol's token in dave's session: bound to carol's.
    assert.is((await post(url, dave, form)).status, 403, "carol's CSRF token in dave's session");

    const publisher = await loggedIn(url, PUBLISHER, 'publisher password');
    const publisherForm = (await approveForm(url, publisher))!;
    assert.equal(publisherForm.csrf, csrfOf(publisher), 'the CSRF token is the one the session gives');
    const own = await post(url, publisher, publisherForm);
    assert.is(own.status, 403, own.body);
    assert.match(own.body, /published or promoted my-app 1\.4\.0: an approval must come from someone else/);

    const token = await login(url, { token: TOKEN });
    assert.is(token.status, 303);
    assert.is(await approveForm(url, token.cookie!), undefined, 'the token names nobody: no button');
    assert.is((await post(url, token.cookie, form)).status, 403);

    const out = await fetch(`${url}/logout`, { method: 'POST', headers: { Cookie: carol }, redirect: 'manual' });
    assert.is(out.status, 303);
    const ended = await post(url, carol, form);
    assert.is(ended.status, 403, 'a logged-out session, its form copied');
    assert.equal(approvalFiles(s), [], 'nothing written');
    assert.is((await promote(s)).exitCode, 2, 'still not approved');
  } finally {
    await Promise.all([s.server.stop(), s.w.server.close()]);
  }
});

/** The CSRF token of the session in `cookie` (`shipkit_session=ID.ISSUED[.NAME].MAC`). */
function csrfOf(cookie: string): string {
  const [id, issued] = cookie.slice(cookie.indexOf('=') + 1).split('.');
  return createSessionKeys(TOKEN).csrfToken({ id, issued: Number(issued) });
}

test.run();
