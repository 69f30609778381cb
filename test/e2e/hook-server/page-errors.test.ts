// What a browser gets when a page cannot be shown, from a real hook-server over HTTP: a bad Since
// on the Audit page, `/releases/UNKNOWN` and a job page of no job id answer a page in the pages'
// layout with the reason in it and the right status, while JSON clients keep their JSON errors;
// a time as the Audit page shows it (`2026-05-01 12:00:00 UTC`) is a Since the page takes.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const TOKEN = `token-${randomUUID()}`;
const env = { HOOK_SECRET: `s-${randomUUID()}`, HOOK_TOKEN: TOKEN, FLEET_WEB: `fleet-${randomUUID()}` };
const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8';

let server: Server;
let cookie: string;

test.before(async () => {
  const dir = tmpDir('shipkit-page-errors-');
  const file = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(file, `${readFileSync(file, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n`);
  server = await startScript('hook-server', ['--config', file, '--listen', '127.0.0.1:0'], { env });
  const login = await fetch(`${server.url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: TOKEN, user: 'alice' }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
  assert.is(login.status, 303);
  cookie = login.headers.get('set-cookie')!.split(';')[0];
});

test.after(async () => {
  await server?.stop();
});

const browse = (route: string) => fetch(`${server.url}${route}`, { headers: { Accept: HTML, Cookie: cookie } });
const api = (route: string) => fetch(`${server.url}${route}`, { headers: { Authorization: `Bearer ${TOKEN}` } });

/** A page of the pages' layout for a signed-in viewer: the header with Audit and Log out. */
async function assertPage(res: Response, status: number): Promise<string> {
  const html = await res.text();
  assert.is(res.status, status, html.slice(0, 500));
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(html, /^<!doctype html>/);
  assert.match(html, '<header><h1><a href="/">shipkit</a></h1><nav><a href="/audit">Audit</a></nav>');
  assert.match(html, 'Log out');
  assert.ok(res.headers.get('content-security-policy'), 'the pages’ security headers');
  return html;
}

test('the Audit page takes a time as it shows one in its Since box', async () => {
  const page = await assertPage(await browse('/audit'), 200);
  const shown = /<time datetime="[^"]+">([^<]+)<\/time><\/td><td>login</.exec(page);
  assert.ok(shown, 'the login is on the page with its time');
  assert.match(shown[1], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
  const since = await assertPage(await browse(`/audit?since=${encodeURIComponent(shown[1])}`), 200);
  assert.match(since, /<td>login<\/td>/, 'the login is at or after its own time');
  assert.match(since, `value="${shown[1]}"`);
  // The JSON API takes it too.
  const json = (await (await api(`/audit?since=${encodeURIComponent(shown[1])}`)).json()) as any;
  assert.ok(json.entries.some((e: { action: string }) => e.action === 'login'));
});

test('a Since the Audit page cannot read: the page, 400, the reason in it; the JSON API keeps its JSON 400', async () => {
  const bad = 'last <b>tuesday</b>';
  const html = await assertPage(await browse(`/audit?since=${encodeURIComponent(bad)}`), 400);
  assert.match(html, '<h2>Audit trail</h2>');
  assert.match(html, /<p class="notice error"><bdi>since must be an entry number or a time such as 2026-05-01/);
  assert.match(html, 'value="last &lt;b&gt;tuesday&lt;/b&gt;"', 'what was typed, kept in the box');
  assert.not.match(html, '<b>tuesday');
  assert.not.match(html, '<table class="audit">');
  const json = await api(`/audit?since=${encodeURIComponent(bad)}`);
  assert.is(json.status, 400);
  assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await json.json()) as { error: string; request: string };
  assert.match(body.error, /^since must be an entry number/);
  assert.ok(body.request);
});

test('/releases/UNKNOWN and /jobs/NOT-AN-ID in a browser: a 404 page that says so; to curl, JSON as before', async () => {
  const known = await assertPage(await browse('/releases/web'), 200);
  assert.match(known, 'Releases of');
  const unknown = await assertPage(await browse('/releases/nope'), 404);
  assert.match(unknown, '<h2>No such app</h2>');
  assert.match(unknown, '<bdi>nope</bdi>');
  const odd = await assertPage(await browse(`/releases/${encodeURIComponent('<x>')}`), 404);
  assert.not.match(odd, '<x>');
  const curl = await fetch(`${server.url}/releases/nope`, { headers: { Cookie: cookie } });
  assert.is(curl.status, 404);
  assert.equal(Object.keys((await curl.json()) as object), ['error', 'request']);

  const job = await assertPage(await browse('/jobs/..%2Fetc'), 404);
  assert.match(job, '<h2>No such job</h2>');
  const jobJson = await api('/jobs/..%2Fetc');
  assert.is(jobJson.status, 404);
  assert.match(jobJson.headers.get('content-type') ?? '', /^application\/json/);
  await jobJson.arrayBuffer();
});

test.run();
