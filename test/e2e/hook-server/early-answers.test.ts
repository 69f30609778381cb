// Answers known from the headers alone come before the body: a delivery with no signature (or
// GitLab token) is refused without reading its 24 MB, and `Expect: 100-continue` gets `100
// Continue` only when the body will really be read (never before a 413 or 401). Raw sockets, so
// the test sees exactly what went over the wire and when.
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAKE_BUILD, githubSignature, pushPayload, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const MB = 1024 * 1024;

let server: Server;
let dir: string;

test.before(async () => {
  dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {}, 'group/site': {} } });
  server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
});
test.after(async () => {
  await server.stop();
});

interface Exchange {
  text: string;
  closed: boolean;
  ms: number;
}

/**
 * Send a request head and `body` (if any) on a raw connection; with `sendAfterContinue`, send it
 * only once `100 Continue` has arrived. Collects what the server sends until it closes or `waitMs`.
 */
function exchange(
  head: string[],
  {
    body,
    sendAfterContinue = false,
    waitMs = 3_000,
  }: { body?: Buffer; sendAfterContinue?: boolean; waitMs?: number } = {},
): Promise<Exchange> {
  const { port } = new URL(server.url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(Number(port), '127.0.0.1');
    let text = '';
    let sent = false;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('error', () => {
      /* a reset after the answer is fine */
    });
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (sendAfterContinue && !sent && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && body) {
        sent = true;
        socket.write(body);
      }
    });
    socket.on('close', () => finish(true));
    socket.write(`${head.join('\r\n')}\r\n\r\n`);
    if (body && !sendAfterContinue) socket.write(body);
  });
}

const statusOf = (text: string) => text.split('\r\n')[0];

test('an unsigned 24 MB GitHub delivery is answered 401 from its headers, without its body being read', async () => {
  const head = [
    'POST /hooks/github HTTP/1.1',
    'Host: x',
    'Content-Type: application/json',
    'X-GitHub-Event: push',
    `X-GitHub-Delivery: ${randomUUID()}`,
    `Content-Length: ${24 * MB}`,
  ];
  // Only the first 64 KB is ever sent: an answer has to come without the rest.
  const res = await exchange(head, { body: Buffer.alloc(64 * 1024, 0x20) });
  assert.is(statusOf(res.text), 'HTTP/1.1 401 Unauthorized', res.text.slice(0, 200) || `no answer in ${res.ms} ms`);
  assert.match(res.text, /"error":"bad signature"/);
  assert.ok(res.closed, 'the connection is closed: the rest of the body is not read');
  assert.match(server.output(), /missing signature/);
});

test('GitLab without X-Gitlab-Token, Gitea without a signature header, GitHub with only SHA-1: 401 before the body', async () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['/hooks/gitlab', ['X-Gitlab-Event: Push Hook'], /missing X-Gitlab-Token/],
    ['/hooks/gitea', ['X-Gitea-Event: push'], /missing signature/],
    [
      '/',
      ['X-GitHub-Event: push', 'X-Hub-Signature: sha1=0123456789012345678901234567890123456789'],
      /SHA-1 is refused/,
    ],
  ];
  for (const [route, headers, logged] of cases) {
    const head = [
      `POST ${route} HTTP/1.1`,
      'Host: x',
      'Content-Type: application/json',
      ...headers,
      `Content-Length: ${24 * MB}`,
    ];
    const res = await exchange(head, { body: Buffer.alloc(1024, 0x20) });
    assert.is(
      statusOf(res.text),
      'HTTP/1.1 401 Unauthorized',
      `${route}: ${res.text.slice(0, 120) || `no answer in ${res.ms} ms`}`,
    );
    assert.match(server.output(), logged);
  }
});

test('Expect: 100-continue with a Content-Length over the cap gets 413 at once, never 100 Continue', async () => {
  const head = [
    'POST /hooks/github HTTP/1.1',
    'Host: x',
    'Content-Type: application/json',
    'X-GitHub-Event: push',
    `X-Hub-Signature-256: sha256=${'0'.repeat(64)}`,
    `Content-Length: ${30 * MB}`,
    'Expect: 100-continue',
  ];
  const res = await exchange(head);
  assert.is(
    statusOf(res.text),
    'HTTP/1.1 413 Payload Too Large',
    res.text.slice(0, 200) || `no answer in ${res.ms} ms`,
  );
  assert.not.match(res.text, /100 Continue/);
});

test('Expect: 100-continue without a signature gets 401, never 100 Continue', async () => {
  const head = [
    'POST /hooks/github HTTP/1.1',
    'Host: x',
    'Content-Type: application/json',
    'X-GitHub-Event: push',
    'Content-Length: 5000',
    'Expect: 100-continue',
  ];
  const res = await exchange(head);
  assert.is(statusOf(res.text), 'HTTP/1.1 401 Unauthorized', res.text.slice(0, 200) || `no answer in ${res.ms} ms`);
  assert.not.match(res.text, /100 Continue/);
});

test('Expect: 100-continue on a genuine delivery: 100 Continue, then the body, then 202', async () => {
  const body = Buffer.from(JSON.stringify(pushPayload('octo/site', { sha: 'd'.repeat(40) })));
  const head = [
    'POST /hooks/github HTTP/1.1',
    'Host: x',
    'Content-Type: application/json',
    'X-GitHub-Event: push',
    `X-GitHub-Delivery: ${randomUUID()}`,
    `X-Hub-Signature-256: ${await githubSignature(SECRET, body.toString())}`,
    `Content-Length: ${body.length}`,
    'Expect: 100-continue',
    'Connection: close',
  ];
  const res = await exchange(head, { body, sendAfterContinue: true, waitMs: 10_000 });
  assert.ok(res.text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted'), res.text.slice(0, 200));
});

test('nothing refused above was queued or spooled', async () => {
  const jobs = (await (await fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json())
    .jobs as Array<{ repo: string }>;
  assert.equal(
    jobs.map((j) => j.repo),
    ['octo/site'],
    'only the genuine delivery',
  );
  assert.equal(readdirSync(path.join(dir, 'data', 'tmp')), []);
});

test.run();
