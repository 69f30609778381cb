// templates/nginx-hook-server.conf in front of a real hook-server child, with Debian's nginx on
// 127.0.0.1 (TLS left out: the listen and ssl_* lines are replaced by a plain port): as shipped,
// only /hooks/ and /healthz pass; with its status-page lines uncommented, as the template says,
// the page, login (the Origin check sees the browser's host), assets, badges, job pages and a
// live log (not buffered by nginx) work through it.
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAKE_BUILD, deliverGithub, pingPayload, pushPayload, waitForJobState, writeConfig } from '../fixtures/hooks/deliveries.ts';
import { ROOT, freePort, startScript, tmpDir, waitFor, type Server } from '../helpers.ts';

const NGINX = '/usr/sbin/nginx';
const TEMPLATE = path.join(ROOT, 'templates', 'nginx-hook-server.conf');
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: FAKE_BUILD, SHIPKIT_RELEASE_COMMAND: FAKE_BUILD };

/** The template's TLS server block on a plain loopback port, its upstream at `upstream`; `open`: the status-page lines uncommented. */
function siteFromTemplate({ port, upstream, open }: { port: number; upstream: number; open: boolean }): string {
  const text = readFileSync(TEMPLATE, 'utf8');
  let site = text.slice(text.indexOf('server {', text.indexOf('server {') + 1));
  if (open) site = site.replace(/^ {4}#(location|\s{4}proxy|\})/gm, '    $1');
  return site
    .replace(/^\s*listen .*\n/gm, '')
    .replace(/^\s*(http2|ssl_\w+) .*\n/gm, '')
    .replace('server {', `server {\n    listen 127.0.0.1:${port};`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${upstream}`);
}

async function startNginx(upstream: number, open: boolean): Promise<{ url: string; stop: () => void }> {
  const dir = tmpDir('shipkit-nginx-');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, 'tmp', sub), { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, [
    'daemon off;', 'master_process off;', 'worker_processes 1;', `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log warn;`,
    'events { worker_connections 64; }',
    'http {', '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${dir}/tmp/${kind === 'client_body' ? 'body' : kind};`),
    siteFromTemplate({ port, upstream, open }),
    '}', '',
  ].join('\n'));
  const fd = openSync(path.join(dir, 'output.log'), 'a');
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf, '-e', `${dir}/error.log`], { cwd: dir, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const stop = () => { if (child.pid && child.exitCode === null && child.signalCode === null) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.on('exit', stop);
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 10_000, what: 'nginx to proxy /healthz' });
  } catch (error) {
    stop();
    const log = existsSync(path.join(dir, 'error.log')) ? readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    throw new Error(`nginx did not start: ${log}`, { cause: error });
  }
  return { url: `http://127.0.0.1:${port}`, stop };
}

async function startHookServer(dir: string): Promise<Server> {
  const config = writeConfig(dir, { repos: { 'octo/hold': {} } });
  appendFileSync(config, 'ui: token\n');
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
      method: 'POST', body: new URLSearchParams({ token: TOKEN }).toString(), redirect: 'manual',
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
    const stream = await fetch(`${nginx.url}/jobs/${job}/log?follow=1`, { headers: { Accept: 'text/event-stream', Cookie: cookie } });
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
    assert.is((await waitForJobState(server.url, TOKEN, job, ['running'])).state, 'running', 'the stream began before the job ended');
    rmSync(path.join(dir, 'hold'));
    assert.ok(await readUntil('event: end'), received);
    assert.match(received, '"state":"succeeded"');
    await reader.cancel();
  } finally {
    nginx.stop();
    assert.is(await server.stop(), 0);
  }
});

test.run();
