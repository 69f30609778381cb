// @deno
// The status page of a real hook-server child after real signed deliveries: hostile commit text
// escaped in the list, the job page and the title; login (right, wrong, rate-limited, cookie
// flags, forged and expired cookies, logout ending the session); each ui: mode; 1,000 jobs in the journal paginated.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { resolveServerSecrets, startHookServer } from '../../../lib/server/hook-server.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { createSessionKeys } from '../../../lib/web/session.ts';
import { seedJournal, seededJob as seededJobOf } from '../../fixtures/hooks/seeded-journal.ts';
import {
  FAKE_BUILD,
  deliverGithub,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { makeBareRepo, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const HOSTILE = `<script>alert(1)</script> "'</textarea> \u202Egnp.exe`;
const CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async function get(
  url: string,
  { cookie, accept = HTML, auth }: { cookie?: string; accept?: string; auth?: string } = {},
) {
  const headers: Record<string, string> = { Accept: accept };
  if (cookie) headers.Cookie = cookie;
  if (auth) headers.Authorization = `Bearer ${auth}`;
  const res = await fetch(url, { headers, redirect: 'manual' });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function login(
  url: string,
  token: string,
  { headers = {} as Record<string, string>, next }: { headers?: Record<string, string>; next?: string } = {},
) {
  const form = new URLSearchParams({ token, ...(next ? { next } : {}) });
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    body: form.toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    redirect: 'manual',
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

function assertPageHeaders(headers: Headers, what: string) {
  assert.is(headers.get('content-security-policy'), CSP, what);
  assert.is(headers.get('x-content-type-options'), 'nosniff', what);
  assert.is(headers.get('referrer-policy'), 'no-referrer', what);
  assert.is(headers.get('cache-control'), 'no-store', what);
}

function assertNeutralised(html: string, what: string) {
  assert.not.match(html, '<script>alert', what);
  assert.not.match(html, '</textarea>', what);
  assert.not.match(html, /[\u202a-\u202e\u2066-\u2069]/, `${what}: a raw bidi control`);
  assert.match(html, '&lt;script&gt;alert(1)&lt;/script&gt; &quot;&#39;&lt;/textarea&gt;', what);
}

const cookieOf = (headers: Headers) => headers.get('set-cookie')!.split(';')[0];

async function startWith(
  configLines: string[],
  repos: Record<string, { branch?: string }>,
  { token = true } = {},
): Promise<{ server: Server; dir: string }> {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos, token });
  // A branch with markup and quotes, written as a JSON string (YAML reads it as one).
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      /branch: (.*)$/gm,
      (_, b) => `branch: ${JSON.stringify(b === 'HOSTILE' ? HOSTILE_BRANCH : b)}`,
    ),
  );
  if (configLines.length) appendFileSync(config, `${configLines.join('\n')}\n`);
  return { server: await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env }), dir };
}
const HOSTILE_BRANCH = `<script>alert(1)</script>"'\u202E</textarea>`;

test('ui: token — hostile commit text escaped everywhere; login, cookie, rate limit, logout', async () => {
  const { server } = await startWith(['ui: token'], { 'octo/site': { branch: 'HOSTILE' }, 'octo/steps': {} });
  try {
    const payload = pushPayload('octo/site', { branch: HOSTILE_BRANCH });
    payload.head_commit = {
      ...payload.head_commit,
      message: `${HOSTILE}\nbody line`,
      author: { name: HOSTILE },
      url: 'https://github.com/octo/site/commit/x"y',
    };
    payload.pusher = { name: HOSTILE };
    const pushed = await deliverGithub(server.url, 'push', payload, SECRET);
    assert.is(pushed.status, 202, JSON.stringify(pushed.json));
    const api = await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    assert.is(api.message, `${HOSTILE}\nbody line`, 'the JSON API has the message');
    assert.is(api.author, HOSTILE);
    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/steps'), SECRET);
    await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);

    // No session: the login form, with the page headers.
    const anonymous = await get(`${server.url}/`);
    assert.is(anonymous.status, 401);
    assertPageHeaders(anonymous.headers, 'login form');
    assert.match(anonymous.body, '<form class="login" method="post" action="/login">');
    assert.not.match(anonymous.body, 'octo/site', 'nothing of the jobs before login');
    const anonymousJob = await get(`${server.url}/jobs/${failed.json.job}`);
    assert.is(anonymousJob.status, 401);
    assert.not.match(anonymousJob.body, 'LOG-LINE');
    assert.match(anonymousJob.body, `name="next" value="/jobs/${failed.json.job}"`);

    // Wrong tokens are 401 with the form again; the 6th attempt is 429 even with the right token.
    for (let i = 1; i <= 5; i++) {
      const wrong = await login(server.url, `${TOKEN}x`);
      assert.is(wrong.status, 401, `wrong ${i}`);
      assert.match(wrong.body, 'Wrong token.');
      assert.is(wrong.headers.get('set-cookie'), null);
    }
    const limited = await login(server.url, TOKEN);
    assert.is(limited.status, 429);
    assert.ok(
      Number(limited.headers.get('retry-after')) > 0 && Number(limited.headers.get('retry-after')) <= 60,
      String(limited.headers.get('retry-after')),
    );
    assert.is(limited.headers.get('set-cookie'), null);
    // Bearer still opens the page (a script, or a person behind the same address).
    const bearer = await get(`${server.url}/`, { auth: TOKEN });
    assert.is(bearer.status, 200);
    assertNeutralised(bearer.body, 'list with bearer');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: token — wrong tokens sent at once on many connections are still limited to 5 (the count is checked after the body is read)', async () => {
  const { server } = await startWith(['ui: token'], { 'octo/site': {} });
  try {
    // Every request's headers first, the bodies only once all are waiting: a limiter that looks
    // before reading the body lets every one of them through.
    const { hostname: host, port } = new URL(server.url);
    const bodies = Array.from({ length: 30 }, (_, i) => `token=${i === 29 ? TOKEN : `${TOKEN}x${i}`}`);
    const sockets = bodies.map((body) => {
      const socket = connect(Number(port), host);
      socket.write(
        `POST /login HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      let answer = '';
      socket.on('data', (d) => {
        answer += d;
      });
      const status = new Promise<string>((resolve) =>
        socket.on('close', () => resolve(answer.split(' ')[1] ?? 'none')),
      );
      return { socket, body, status };
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const { socket, body } of sockets) socket.write(body);
    const statuses = await Promise.all(sockets.map((s) => s.status));
    const count = (code: string) => statuses.filter((s) => s === code).length;
    assert.is(count('401'), 5, statuses.join(' '));
    assert.is(count('429'), 25, statuses.join(' '));
    assert.is(count('303'), 0, 'the right token after 5 wrong ones is refused too');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: token — a right token logs in; cookie flags; forged, expired and other-token cookies refused; logout', async () => {
  const { server } = await startWith(['ui: token'], { 'octo/site': { branch: 'HOSTILE' }, 'octo/steps': {} });
  try {
    const payload = pushPayload('octo/site', { branch: HOSTILE_BRANCH });
    payload.head_commit = { ...payload.head_commit, message: HOSTILE, author: { name: HOSTILE } };
    const pushed = await deliverGithub(server.url, 'push', payload, SECRET);
    await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/steps'), SECRET);
    await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);

    assert.is(
      (await login(server.url, TOKEN, { headers: { Origin: 'https://evil.example' } })).status,
      403,
      'cross-origin form',
    );
    // Browsers send Origin: null for the page's own form under Referrer-Policy: no-referrer; Sec-Fetch-Site tells.
    assert.is(
      (await login(server.url, TOKEN, { headers: { Origin: 'null', 'Sec-Fetch-Site': 'cross-site' } })).status,
      403,
      'a sandboxed frame elsewhere',
    );
    assert.is(
      (await login(server.url, TOKEN, { headers: { Origin: 'https://evil.example', 'Sec-Fetch-Site': 'same-site' } }))
        .status,
      403,
      'a sibling site',
    );
    assert.is(
      (await login(server.url, TOKEN, { headers: { Origin: 'null', 'Sec-Fetch-Site': 'same-origin' } })).status,
      303,
      "the page's own form in a browser",
    );
    const big = await fetch(`${server.url}/login`, {
      method: 'POST',
      body: `token=${'x'.repeat(10_000)}`,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    assert.is(big.status, 413, 'body capped before parsing');
    const ok = await login(server.url, TOKEN, { next: `/jobs/${failed.json.job}` });
    assert.is(ok.status, 303);
    assert.is(ok.headers.get('location'), `/jobs/${failed.json.job}`);
    const setCookie = ok.headers.get('set-cookie')!;
    assert.match(
      setCookie,
      /^shipkit_session=[A-Za-z0-9_-]{22}\.\d{13}\.[A-Za-z0-9_-]{43}; Path=\/; Max-Age=604800; HttpOnly; SameSite=Strict$/,
      'no Secure: public_url is not https',
    );
    assert.not.match(setCookie, TOKEN);
    assert.is(
      (await login(server.url, TOKEN, { next: 'https://evil.example/' })).headers.get('location'),
      '/',
      'next stays on this site',
    );
    const cookie = cookieOf(ok.headers);

    const list = await get(`${server.url}/`, { cookie });
    assert.is(list.status, 200);
    assertPageHeaders(list.headers, 'list');
    assertNeutralised(list.body, 'list');
    assert.match(list.body, '<span class="state state-failed">✗ failed</span>');
    assert.match(list.body, '<form method="post" action="/logout">');

    const page = await get(`${server.url}/jobs/${pushed.json.job}`, { cookie });
    assert.is(page.status, 200);
    assertPageHeaders(page.headers, 'job page');
    assertNeutralised(page.body, 'job page');
    assertNeutralised(/<title>[^<]*<\/title>/.exec(page.body)![0], 'title');

    // The failing step first and named; the log's lines shown to a signed-in viewer.
    const failedPage = await get(`${server.url}/jobs/${failed.json.job}`, { cookie });
    assert.match(failedPage.body, 'Failed at step <strong><bdi>compile</bdi></strong> after 1.0 s: <bdi>exit 2</bdi>');
    const steps = failedPage.body.split('<table class="steps">')[1].split('</table>')[0];
    assert.ok(steps.indexOf('compile') < steps.indexOf('pull'), 'failing step listed first');
    assert.match(failedPage.body, 'LOG-LINE-compile-error TS2304');
    assert.match(failedPage.body, '<details id="step-compile" class="failing-step" open>');
    // The same path without text/html is the JSON API, as before; the cookie is accepted for it.
    const json = await get(`${server.url}/jobs/${failed.json.job}`, { accept: '*/*', cookie });
    assert.is(json.status, 200);
    assert.is(JSON.parse(json.body).state, 'failed');
    assert.is(
      (await get(`${server.url}/jobs/${failed.json.job}`, { accept: '*/*' })).status,
      401,
      'JSON API without token or cookie',
    );

    const keys = createSessionKeys(TOKEN);
    const expired = keys.issue(new Date(Date.now() - 8 * 24 * 3600 * 1000));
    const [id, issued, mac] = cookie.split('=')[1].split('.');
    for (const [what, value] of [
      ['expired', expired],
      ['another token', createSessionKeys(`${TOKEN}-old`).issue()],
      ['the token itself', TOKEN],
      ['issue time moved', `${id}.${Number(issued) + 86_400_000}.${mac}`],
      ['MAC altered', `${id}.${issued}.${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BB' : 'AA'}`],
    ] as const) {
      const refused = await get(`${server.url}/`, { cookie: `shipkit_session=${value}` });
      assert.is(refused.status, 401, what);
      assert.not.match(refused.body, 'octo/site', what);
    }

    const out = await fetch(`${server.url}/logout`, {
      method: 'POST',
      headers: { Cookie: cookie },
      redirect: 'manual',
    });
    assert.is(out.status, 303);
    assert.match(out.headers.get('set-cookie')!, /^shipkit_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/);
    assert.is(
      (await get(`${server.url}/`, { cookie })).status,
      401,
      'the cookie is ended on the server (hook-server-sessions.test.ts)',
    );
    const css = await get(`${server.url}/assets/shipkit.css`);
    assert.is(css.status, 200);
    assert.is(css.headers.get('content-type'), 'text/css; charset=utf-8');
    // Revalidation compares as the badge's does (RFC 9110): a proxy that compresses it weakens the
    // ETag to W/"…", and a client may send a list.
    const etag = css.headers.get('etag')!;
    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`]) {
      const again = await fetch(`${server.url}/assets/shipkit.css`, { headers: { 'If-None-Match': ifNoneMatch } });
      assert.is(again.status, 304, ifNoneMatch);
      await again.arrayBuffer();
    }
    assert.is((await get(`${server.url}/assets/shipkit.css`)).status, 200);
    assert.is((await get(`${server.url}/assets/../journal`)).status, 404);
    // The icon every browser asks for: served (not a warning in the log for each page view).
    const icon = await get(`${server.url}/favicon.ico`);
    assert.is(icon.status, 200);
    assert.is(icon.headers.get('content-type'), 'image/svg+xml');
    assert.match(icon.body, /^<svg /);
    assert.not.match(server.output(), /favicon/);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: public — states, commit info and durations without login, never a log line; Secure cookie under https', async () => {
  const { server } = await startWith(['ui: public', 'public_url: https://ci.example.com'], {
    'octo/steps': {},
    'octo/hold': {},
  });
  try {
    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/steps'), SECRET);
    await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);
    const list = await get(`${server.url}/`);
    assert.is(list.status, 200);
    assertPageHeaders(list.headers, 'public list');
    assert.match(list.body, 'octo/steps');
    assert.match(list.body, 'Initial commit', 'commit message shown');
    assert.match(list.body, '<a href="/login">Log in</a>');
    const page = await get(`${server.url}/jobs/${failed.json.job}`);
    assert.is(page.status, 200);
    assert.match(page.body, 'Logs are shown to signed-in users only.');
    assert.not.match(page.body, 'LOG-LINE', 'no log line on the public job page');
    assert.not.match(page.body, 'compile', 'not even the step names (they come from the log)');
    assert.is((await get(`${server.url}/jobs/${failed.json.job}/log`)).status, 401, 'log route stays token-only');
    assert.is((await get(`${server.url}/jobs/${failed.json.job}/log`, { accept: '*/*' })).status, 401);
    const ok = await login(server.url, TOKEN);
    assert.match(ok.headers.get('set-cookie')!, /; Secure$/);
    const signedIn = await get(`${server.url}/jobs/${failed.json.job}`, { cookie: cookieOf(ok.headers) });
    assert.match(signedIn.body, 'LOG-LINE-compile-error', 'a signed-in viewer sees the log');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: off — the page, job pages, login, assets and badges 404; the JSON API keeps working', async () => {
  const { server } = await startWith(['ui: off'], { 'octo/site': {} });
  try {
    const pushed = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    for (const route of ['/', `/jobs/${pushed.json.job}`, '/login', '/assets/shipkit.css', '/badge/octo/site.svg']) {
      const res = await get(server.url + route, { auth: TOKEN });
      assert.is(res.status, 404, route);
      assert.not.match(res.body, '<html', route);
    }
    assert.is((await login(server.url, TOKEN)).status, 404);
    assert.is(
      (await get(`${server.url}/jobs/${pushed.json.job}`, { accept: 'application/json', auth: TOKEN })).status,
      200,
    );
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: token without token: in the config — the page says what to set (404)', async () => {
  const { server } = await startWith([], { 'octo/site': {} }, { token: false });
  try {
    const res = await get(`${server.url}/`);
    assert.is(res.status, 404);
    assertPageHeaders(res.headers, 'notice');
    assert.match(res.body, 'needs <code>token:</code> in the config');
    assert.is((await login(server.url, 'anything')).status, 404);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('first run, no repos in the config: the page names that config file and the webhook URLs of this server; not to a viewer who is not signed in', async () => {
  const { server, dir } = await startWith([], {});
  try {
    const page = await get(`${server.url}/`, { auth: TOKEN });
    assert.is(page.status, 200);
    assert.match(page.body, '<h3>1. Add a repository</h3>');
    assert.match(page.body, `in its config <code>${path.join(dir, 'shipkit.yml')}</code>`);
    assert.match(page.body, `<code>${server.url}/hooks/github</code>`);
    assert.match(page.body, 'No repositories in the config yet: see Getting started above.');
    const anonymous = await get(`${server.url}/`);
    assert.is(anonymous.status, 401);
    assert.not.match(anonymous.body, 'Getting started');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('the job page lists what was sent about the job from HookServer.deliveries (the instance the reporters write to)', async () => {
  const dir = tmpDir();
  const config = await loadShipkitConfig(writeConfig(dir, { repos: { 'octo/site': {} } }));
  const resolved = await resolveServerSecrets(config, env);
  const server = await startHookServer({
    config,
    listen: { host: '127.0.0.1', port: 0 },
    ...resolved,
    log: silentLogger,
    commands: { build: [FAKE_BUILD], release: [FAKE_BUILD] },
    env: { ...process.env, ...env },
  });
  try {
    const pushed = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    await waitForJobState(server.url, TOKEN, pushed.json.job, ['succeeded']);
    const before = await get(`${server.url}/jobs/${pushed.json.job}`, { auth: TOKEN });
    assert.match(before.body, '<h2>Commit statuses and notifications</h2>');
    assert.match(
      before.body,
      'None were sent about this job: the repository has no <code>report:</code> (commit statuses on the forge) and no <code>notify:</code> in the config',
    );
    server.deliveries.record(pushed.json.job, 'status:success', {
      what: 'commit status shipkit/build: success to github',
      outcome: 'failed',
      attempts: 4,
      detail: `HTTP 422 ${HOSTILE}`,
    });
    const after = await get(`${server.url}/jobs/${pushed.json.job}`, { auth: TOKEN });
    assert.match(
      after.body,
      '<tr class="delivery delivery-failed"><td><bdi>commit status shipkit/build: success to github</bdi></td><td>failed</td><td>4</td><td><bdi>HTTP 422 &lt;script&gt;',
    );
    assertNeutralised(after.body, 'deliveries');
  } finally {
    await server.stop();
  }
});

test('a real build whose compile fails: its steps with times, compile first and open, its output escaped', async () => {
  const dir = tmpDir();
  const repo = await makeBareRepo(path.join(dir, 'git'), 'site');
  const config = writeConfig(dir, { repos: { 'octo/site': { url: repo.bare, steps: ['pull', 'compile'] } } });
  appendFileSync(config, `    compile: 'echo compile-output-marker; echo "<script>alert(3)</script>"; exit 2'\n`);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
  try {
    const pushed = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: repo.first }), SECRET);
    assert.is(pushed.status, 202);
    await waitForJobState(server.url, TOKEN, pushed.json.job, ['failed'], 60_000);
    const page = await get(`${server.url}/jobs/${pushed.json.job}`, { auth: TOKEN });
    assert.match(page.body, /Failed at step <strong><bdi>compile<\/bdi><\/strong> after \d+\.\d s: /);
    const steps = page.body.split('<table class="steps">')[1].split('</table>')[0];
    assert.equal(
      [...steps.matchAll(/<tr class="step step-(\w+)/g)].map((m) => m[1]),
      ['failed', 'ok'],
      'compile (failed) first, then pull (ok)',
    );
    assert.match(steps, /<td class="step-ok">ok<\/td><td>\d+\.\d s<\/td>/, 'the pull step with its time');
    const compile = page.body.split('<details id="step-compile" class="failing-step" open>')[1].split('</details>')[0];
    assert.match(compile, 'compile-output-marker');
    assert.match(compile, '&lt;script&gt;alert(3)&lt;/script&gt;');
    assert.not.match(page.body, '<script>alert(3)');
    assert.match(page.body, '<details id="step-pull">', 'the step that passed is closed');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

// Every fifth record as written before jobs kept their trigger: no message, author or pusher.
const seededJob = (i: number) => seededJobOf(i, { someWithoutTrigger: true });

test('1,000 jobs in the journal: 50 rows a page, next/prev links, ?repo= filter; render time measured', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {}, 'octo/other': {} } });
  seedJournal(path.join(dir, 'data'), 1000, { someWithoutTrigger: true });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const first = await get(`${server.url}/`, { auth: TOKEN });
    assert.is(first.status, 200);
    assert.is(first.body.match(/<tr class="job">/g)?.length, 50);
    assert.match(first.body, 'rel="next" href="/?page=2"');
    assert.match(first.body, 'page 1 of 20 (1000 jobs)');
    assert.match(first.body, seededJob(1000).id, 'newest first');
    assert.match(first.body, '<bdi>commit 999</bdi>');
    const old = await get(`${server.url}/jobs/${seededJob(1000).id}`, { auth: TOKEN });
    assert.is(old.status, 200, 'a record without the trigger fields still shows');
    assert.not.match(old.body, '<dt>Message</dt>');
    const api = JSON.parse((await get(`${server.url}/jobs?limit=2`, { auth: TOKEN, accept: '*/*' })).body);
    assert.equal(
      api.jobs.map((j: { message: string | null; author: string | null }) => [j.message, j.author]),
      [
        [null, null],
        ['commit 999\n\nbody', 'Author 999'],
      ],
    );
    const second = await get(`${server.url}/?page=2`, { auth: TOKEN });
    assert.is(second.body.match(/<tr class="job">/g)?.length, 50);
    assert.match(second.body, 'rel="prev" href="/"');
    assert.match(second.body, seededJob(950).id);
    assert.not.match(second.body, seededJob(951).id);
    const last = await get(`${server.url}/?page=20`, { auth: TOKEN });
    assert.not.match(last.body, 'rel="next"');
    const other = await get(`${server.url}/?repo=octo/other`, { auth: TOKEN });
    assert.match(other.body, 'page 1 of 5 (250 jobs)');
    assert.not.match(other.body.split('<table class="jobs">')[1], 'octo/site</bdi>');
    for (const bad of ['?page=-1', '?page=abc', '?page=99999999999999999999', `?repo=${encodeURIComponent(HOSTILE)}`]) {
      const res = await get(`${server.url}/${bad}`, { auth: TOKEN });
      assert.is(res.status, 200, bad);
      assert.not.match(res.body, '<script>alert', bad);
    }
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const res = await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${TOKEN}`, Accept: HTML } });
      await res.text();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[15];
    console.log(
      `GET / with 1,000 jobs: median ${median.toFixed(1)} ms over 30 requests (p90 ${times[27].toFixed(1)} ms)`,
    );
    assert.ok(median < 250, `median ${median} ms`);
  } finally {
    assert.is(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
