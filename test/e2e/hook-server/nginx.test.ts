// templates/nginx-hook-server.conf in front of a real hook-server child, with Debian's nginx on
// 127.0.0.1 (TLS left out: the listen and ssl_* lines are replaced by a plain port): as shipped,
// only /hooks/ and /healthz pass; with its status-page lines uncommented, as the template says,
// the page, login (the Origin check sees the browser's host), assets, badges, job pages and a
// live log (not buffered by nginx) work through it. With only its `location /ci/` lines
// uncommented and `public_url: …/ci`, every link, form, redirect, asset and the cookie stay under /ci/,
// and Debian's chromium logs in, follows a live log and logs out there.
// The nginx set-up it runs (the template, the host name, the site link) is shown in docs/hook-server.md.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  pingPayload,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { NGINX, startNginx as startNginxWith, type Nginx } from '../../fixtures/nginx.ts';
import { ROOT, freePort, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const TEMPLATE = path.join(ROOT, 'templates', 'nginx-hook-server.conf');
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

/**
 * The template's TLS server block on a plain loopback port, its upstream at `upstream`; `open`:
 * the status-page lines uncommented; `prefix`: only its `location /ci/` block uncommented.
 */
function siteFromTemplate({
  port,
  upstream,
  open,
  prefix = false,
}: {
  port: number;
  upstream: number;
  open: boolean;
  prefix?: boolean;
}): string {
  const text = readFileSync(TEMPLATE, 'utf8');
  let site = text.slice(text.indexOf('server {', text.indexOf('server {') + 1));
  if (open) site = site.replace(/^ {4}#(location|\s{4}proxy|\})/gm, '    $1');
  if (prefix) {
    const block = /^ {4}#location \/ci\/ \{\n(?: {4}# {4}.*\n)+ {4}#\}\n/m;
    assert.match(site, block, 'the template has a location /ci/ block');
    site = site.replace(block, (lines) => lines.replace(/^ {4}#/gm, '    '));
  }
  return site
    .replace(/^\s*listen .*\n/gm, '')
    .replace(/^\s*(http2|ssl_\w+) .*\n/gm, '')
    .replace('server {', `server {\n    listen 127.0.0.1:${port};`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${upstream}`);
}

async function startNginx(
  upstream: number,
  open: boolean,
  { prefix = false, port: chosen }: { prefix?: boolean; port?: number } = {},
): Promise<Nginx> {
  const port = chosen ?? (await freePort());
  return startNginxWith(siteFromTemplate({ port, upstream, open, prefix }), port);
}

async function startHookServer(dir: string, extra: string[] = [], repos = ['octo/hold']): Promise<Server> {
  const config = writeConfig(dir, { repos: Object.fromEntries(repos.map((name) => [name, {}])) });
  appendFileSync(config, ['ui: token', ...extra, ''].join('\n'));
  return startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
}

const available = existsSync(NGINX);

test('as shipped: webhooks and /healthz pass; the status page, login, assets and badges stay on localhost', async () => {
  if (!available) return console.log(`  skipped: ${NGINX} is not installed (apt-get install nginx-light)`);
  const dir = tmpDir();
  const server = await startHookServer(dir);
  const nginx = await startNginx(server.port, false);
  try {
    const ping = await deliverGithub(nginx.url, 'ping', pingPayload('octo/hold'), SECRET);
    assert.is(ping.status, 200, JSON.stringify(ping.json));
    for (const route of ['/', '/login', '/assets/shipkit.css', '/badge/octo/hold.svg', '/jobs', '/metrics']) {
      assert.is((await fetch(nginx.url + route)).status, 404, route);
    }
  } finally {
    nginx.stop();
    assert.is(await server.stop(), 0);
  }
});

test('status-page lines uncommented: page, login, assets, badge, job page and a live log work through nginx', async () => {
  if (!available) return console.log(`  skipped: ${NGINX} is not installed (apt-get install nginx-light)`);
  const dir = tmpDir();
  const server = await startHookServer(dir);
  const nginx = await startNginx(server.port, true);
  try {
    writeFileSync(path.join(dir, 'hold'), '');
    const pushed = await deliverGithub(nginx.url, 'push', pushPayload('octo/hold'), SECRET);
    assert.is(pushed.status, 202, JSON.stringify(pushed.json));
    const job = pushed.json.job as string;
    await waitForJobState(server.url, TOKEN, job, ['running']);

    assert.is((await fetch(`${nginx.url}/`, { headers: { Accept: 'text/html' } })).status, 401, 'the login form');
    const css = await fetch(`${nginx.url}/assets/shipkit.css`);
    assert.is(css.status, 200);
    assert.match(css.headers.get('content-type')!, 'text/css');
    const badge = await fetch(`${nginx.url}/badge/octo/hold.svg`);
    assert.is(badge.status, 200);
    assert.match(await badge.text(), 'aria-label="build: running"');
    assert.ok(badge.headers.get('etag'));

    // A form posted with Origin but no Sec-Fetch-Site: hook-server compares it with the Host nginx passes on.
    const login = await fetch(`${nginx.url}/login`, {
      method: 'POST',
      body: new URLSearchParams({ token: TOKEN }).toString(),
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: nginx.url },
    });
    assert.is(login.status, 303, await login.text());
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    const page = await fetch(`${nginx.url}/`, { headers: { Accept: 'text/html', Cookie: cookie } });
    assert.is(page.status, 200);
    assert.match(await page.text(), job);
    const jobPage = await fetch(`${nginx.url}/jobs/${job}`, { headers: { Accept: 'text/html', Cookie: cookie } });
    assert.is(jobPage.status, 200);
    assert.match(await jobPage.text(), `data-follow="/jobs/${job}/log?follow=1"`);

    // The live log's first bytes arrive while the job still runs (nginx does not hold them back).
    const stream = await fetch(`${nginx.url}/jobs/${job}/log?follow=1`, {
      headers: { Accept: 'text/event-stream', Cookie: cookie },
    });
    assert.is(stream.status, 200);
    assert.match(stream.headers.get('content-type')!, 'text/event-stream');
    const reader = stream.body!.getReader();
    let received = '';
    const readUntil = async (what: string) => {
      while (!received.includes(what)) {
        const { value, done } = await reader.read();
        if (done) break;
        received += Buffer.from(value).toString('utf8');
      }
      return received.includes(what);
    };
    assert.ok(await readUntil('retry: 2000'), received);
    assert.is(
      (await waitForJobState(server.url, TOKEN, job, ['running'])).state,
      'running',
      'the stream began before the job ended',
    );
    rmSync(path.join(dir, 'hold'));
    assert.ok(await readUntil('event: end'), received);
    assert.match(received, '"state":"succeeded"');
    await reader.cancel();
  } finally {
    nginx.stop();
    assert.is(await server.stop(), 0);
  }
});

/** Every URL a page points at or posts to, as [attribute, value]. */
function urlsIn(html: string): Array<[string, string]> {
  return [...html.matchAll(/\b(href|src|action|data-follow)="([^"]*)"/g)].map((m) => [
    m[1],
    m[2].replaceAll('&amp;', '&'),
  ]);
}

test("under /ci/ (the template's location /ci/ block, public_url: …/ci): login, redirect, cookie, every link and asset stay under /ci/", async () => {
  if (!available) return console.log(`  skipped: ${NGINX} is not installed (apt-get install nginx-light)`);
  const dir = tmpDir();
  const port = await freePort();
  const server = await startHookServer(dir, [`public_url: http://127.0.0.1:${port}/ci`]);
  const nginx = await startNginx(server.port, false, { prefix: true, port });
  const base = `${nginx.url}/ci`;
  try {
    writeFileSync(path.join(dir, 'hold'), '');
    const pushed = await deliverGithub(base, 'push', pushPayload('octo/hold'), SECRET);
    assert.is(pushed.status, 202, JSON.stringify(pushed.json));
    const job = pushed.json.job as string;
    await waitForJobState(server.url, TOKEN, job, ['running']);
    for (const route of ['/', '/login', '/assets/shipkit.css', `/jobs/${job}`]) {
      assert.is(
        (await fetch(nginx.url + route, { headers: { Accept: 'text/html' } })).status,
        404,
        `${route}: only /ci/ is open`,
      );
    }

    // Signed out: the login form, its action and stylesheet under /ci/.
    const form = await fetch(`${base}/`, { headers: { Accept: 'text/html' } });
    assert.is(form.status, 401);
    const formHtml = await form.text();
    assert.match(formHtml, '<form class="login" method="post" action="/ci/login">');
    await fetchEach(formHtml, '');

    const post = (next?: string) =>
      fetch(new URL('/ci/login', nginx.url), {
        method: 'POST',
        body: new URLSearchParams({ token: TOKEN, ...(next ? { next } : {}) }).toString(),
        redirect: 'manual',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: nginx.url },
      });
    const login = await post();
    assert.is(login.status, 303, await login.text());
    assert.is(login.headers.get('location'), '/ci/');
    const setCookie = login.headers.get('set-cookie')!;
    assert.match(
      setCookie,
      /^shipkit_session=[A-Za-z0-9_-]{22}\.\d{13}\.[A-Za-z0-9_-]{43}; Path=\/ci; Max-Age=604800; HttpOnly; SameSite=Strict$/,
    );
    const cookie = setCookie.split(';')[0];
    assert.is(
      (await post(`/jobs/${job}`)).headers.get('location'),
      `/ci/jobs/${job}`,
      'back to the job page the viewer came from',
    );

    // Signed in: the list and the running job's page; each of their links answers through nginx.
    const page = await fetch(new URL(login.headers.get('location')!, nginx.url), {
      headers: { Accept: 'text/html', Cookie: cookie },
    });
    assert.is(page.status, 200);
    const pageHtml = await page.text();
    assert.match(pageHtml, `href="/ci/jobs/${job}"`);
    await fetchEach(pageHtml, cookie);
    const jobPage = await fetch(`${base}/jobs/${job}`, { headers: { Accept: 'text/html', Cookie: cookie } });
    assert.is(jobPage.status, 200);
    const jobHtml = await jobPage.text();
    assert.match(jobHtml, `data-follow="/ci/jobs/${job}/log?follow=1"`);
    assert.match(jobHtml, '<script src="/ci/assets/log-follow.js" defer></script>');
    await fetchEach(jobHtml, cookie);

    rmSync(path.join(dir, 'hold'));
    await waitForJobState(server.url, TOKEN, job, ['succeeded']);
    const done = await fetch(`${base}/jobs/${job}`, { headers: { Accept: 'text/html', Cookie: cookie } });
    assert.is(done.status, 200);
    const doneHtml = await done.text();
    assert.match(doneHtml, `href="/ci/jobs/${job}/log"`);
    await fetchEach(doneHtml, cookie);
  } finally {
    rmSync(path.join(dir, 'hold'), { force: true });
    nginx.stop();
    assert.is(await server.stop(), 0);
  }

  /** Each URL of the page on this host is under /ci/ and answers through nginx: GETs 200 (401 the login form), the live log 200 as a stream, logout 303 back to /ci/. */
  async function fetchEach(html: string, cookie: string): Promise<void> {
    const urls = urlsIn(html).filter(([, value]) => !value.startsWith('#') && !value.startsWith('https://github.com/'));
    assert.ok(urls.length >= 2, html);
    for (const [attribute, value] of urls) {
      assert.ok(value.startsWith('/ci/'), `${attribute}="${value}" is not under /ci/`);
      const url = new URL(value, nginx.url);
      const headers: Record<string, string> = { Accept: 'text/html', ...(cookie ? { Cookie: cookie } : {}) };
      if (attribute === 'action' && value === '/ci/logout') {
        // Logout ends the session on the server: a session of its own, so `cookie` lives on for the URLs after it.
        const own = cookie
          ? (
              await fetch(new URL('/ci/login', nginx.url), {
                method: 'POST',
                body: new URLSearchParams({ token: TOKEN }).toString(),
                redirect: 'manual',
                headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: nginx.url },
              })
            ).headers
              .get('set-cookie')!
              .split(';')[0]
          : '';
        const out = await fetch(url, {
          method: 'POST',
          redirect: 'manual',
          headers: { ...headers, ...(own ? { Cookie: own } : {}), Origin: nginx.url },
        });
        assert.is(out.status, 303, value);
        assert.is(out.headers.get('location'), '/ci/');
        assert.is(out.headers.get('set-cookie'), 'shipkit_session=; Path=/ci; Max-Age=0; HttpOnly; SameSite=Strict');
        if (own)
          assert.is(
            (await fetch(new URL('/ci/', nginx.url), { headers: { Accept: 'text/html', Cookie: own } })).status,
            401,
            'the logged-out session is refused',
          );
        continue;
      }
      if (attribute === 'data-follow') headers.Accept = 'text/event-stream';
      const res = await fetch(url, { headers });
      // Signed out, the page itself is hook-server's login form (401), not nginx's 404.
      assert.is(res.status, !cookie && value === '/ci/' ? 401 : 200, `${attribute}="${value}"`);
      if (attribute === 'data-follow') assert.match(res.headers.get('content-type')!, 'text/event-stream');
      else if (value.endsWith('.css')) assert.match(res.headers.get('content-type')!, 'text/css');
      else if (value.endsWith('.js')) assert.match(res.headers.get('content-type')!, 'text/javascript');
      await res.body?.cancel();
    }
  }
});

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

test('under /ci/ in a real browser: log in, the styled list, a live log that ends, log out; no console errors or CSP violations', async () => {
  if (!available || !existsSync(CHROMIUM))
    return console.log(`  skipped: needs ${NGINX} and ${CHROMIUM} (apt-get install nginx-light chromium)`);
  const puppeteer = (await import('puppeteer-core')).default;
  const dir = tmpDir();
  const port = await freePort();
  const server = await startHookServer(dir, [`public_url: http://127.0.0.1:${port}/ci`], ['octo/ticker']);
  const nginx = await startNginx(server.port, false, { prefix: true, port });
  const base = `${nginx.url}/ci`;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${path.join(dir, 'chromium')}`,
    ],
  });
  const problems: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warn') return;
      // The login form answers 401 and there is no favicon: the browser logs both loads.
      const from = m.location()?.url ?? '';
      if (/^Failed to load resource/.test(m.text()) && (from === `${base}/` || from.endsWith('/favicon.ico'))) return;
      problems.push(`console ${m.type()}: ${m.text()} (${from})`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    // Nothing the pages load or link to falls outside /ci/ (the browser's own /favicon.ico aside).
    page.on('response', (r) => {
      if (r.status() === 404 && !r.url().endsWith('/favicon.ico')) problems.push(`404: ${r.url()}`);
    });
    await page.evaluateOnNewDocument(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    const styled = () =>
      page.evaluate(() => Array.from(document.styleSheets).reduce((n, sheet) => n + sheet.cssRules.length, 0));

    assert.is((await page.goto(`${base}/`, { waitUntil: 'load' }))!.status(), 401);
    assert.ok((await styled()) > 10, 'the login form is styled');
    await page.type('input#token', TOKEN);
    const [landed] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.click('button[type=submit]'),
    ]);
    assert.is(page.url(), `${base}/`);
    assert.is(landed!.status(), 200, 'the browser sends the Path=/ci cookie back');
    assert.ok((await styled()) > 10);
    const cookies = await page.cookies();
    assert.equal(
      cookies.map((c) => [c.name, c.path]),
      [['shipkit_session', '/ci']],
    );

    writeFileSync(path.join(dir, 'ticker-lines'), '40\n');
    const pushed = await deliverGithub(base, 'push', pushPayload('octo/ticker'), SECRET);
    assert.is(pushed.status, 202, JSON.stringify(pushed.json));
    const job = pushed.json.job as string;
    await waitForJobState(server.url, TOKEN, job, ['running']);
    await page.goto(base, { waitUntil: 'load' });
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(`a[href="/ci/jobs/${job}"]`)]);
    assert.is(page.url(), `${base}/jobs/${job}`);
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 1;
    });
    await page.waitForFunction(() => (document.querySelector('#log pre')?.textContent ?? '').includes('tick 3 of 40'), {
      timeout: 30_000,
    });
    assert.match(await page.$eval('#log', (el) => el.previousElementSibling?.textContent ?? ''), /live/);
    // The end: the page reloads into the finished job's page, with the whole log.
    await page.waitForFunction(
      () =>
        !(window as unknown as { marker?: number }).marker &&
        document.readyState === 'complete' &&
        !document.querySelector('[data-follow]'),
      { timeout: 30_000 },
    );
    assert.match(await page.evaluate(() => document.body.textContent ?? ''), /tick 40 of 40/);
    assert.is(page.url(), `${base}/jobs/${job}`);

    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('header form button[type=submit]')]);
    assert.is(page.url(), `${base}/`);
    assert.ok(await page.$('input#token'), 'logged out: the login form');
    assert.equal(await page.cookies(), []);
    assert.equal(problems, [], problems.join('\n'));
  } finally {
    await browser.close();
    nginx.stop();
    assert.is(await server.stop(), 0);
  }
});

test.run();
