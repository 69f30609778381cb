// @deno
// hook-server's live log, GET /jobs/ID/log?follow=1 as text/event-stream, over plain HTTP: a
// running job's lines arrive while it runs and match the plain log at the end; resume with
// Last-Event-ID; a finished job; auth and unknown jobs; the follower cap; a line written in
// pieces (cut inside a UTF-8 character) arrives whole; a reader that stops reading is dropped and
// costs the server no more memory; a real build's own log (logs.txt, secrets masked) is streamed;
// a stream opened with a session cookie ends with the session (logout, --end-sessions).
import { randomUUID } from 'node:crypto';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from '../../_helpers/build.ts';
import { openEventStream } from '../../fixtures/hooks/event-stream.ts';
import {
  FAKE_BUILD,
  deliverGithub,
  fetchJob,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { RUNTIME, runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';
import { logIn } from '../../fixtures/session.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const auth = { Authorization: `Bearer ${TOKEN}` };
const fakeEnv = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

async function startFake(repos: string[], args: string[] = []): Promise<{ dir: string; server: Server }> {
  const dir = tmpDir('shipkit-follow-');
  const config = writeConfig(dir, { repos: Object.fromEntries(repos.map((r) => [r, {}])), concurrency: 4 });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', ...args], {
    env: fakeEnv,
  });
  return { dir, server };
}

async function push(server: Server, repo: string): Promise<string> {
  const res = await deliverGithub(
    server.url,
    'push',
    pushPayload(repo, { sha: randomUUID().replace(/-/g, '').padEnd(40, '0') }),
    SECRET,
  );
  assert.is(res.status, 202, JSON.stringify(res.json));
  return String(res.json.job);
}

/** Start an o/ticker job printing LINES lines PAUSE seconds apart; resolves once it is running. */
async function runningTicker(dir: string, server: Server, lines: number, pause: number): Promise<string> {
  writeFileSync(path.join(dir, 'ticker-lines'), String(lines));
  writeFileSync(path.join(dir, 'ticker-pause'), String(pause));
  const id = await push(server, 'o/ticker');
  await waitForJobState(server.url, TOKEN, id, ['running']);
  return id;
}

const plainLog = async (server: Server, id: string) =>
  (await fetch(`${server.url}/jobs/${id}/log`, { headers: auth })).text();
const followUrl = (server: Server, id: string) => `${server.url}/jobs/${id}/log?follow=1`;

function vmRssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('a running job: lines arrive while it runs, ids are byte offsets, end carries the state, the text is the plain log', async () => {
  const { dir, server } = await startFake(['o/ticker']);
  try {
    const id = await runningTicker(dir, server, 25, 0.15);
    const stream = await openEventStream(followUrl(server, id), auth);
    assert.is(stream.status, 200);
    assert.match(String(stream.headers['content-type']), /^text\/event-stream/);
    assert.is(stream.headers['cache-control'], 'no-store');
    await stream.waitFor((s) => s.text().includes('tick 3 of 25'), 15_000, 'tick 3');
    assert.is((await fetchJob(server.url, TOKEN, id)).state, 'running', 'lines came while the job ran');
    await stream.ended;
    const end = stream.events.at(-1)!;
    assert.is(end.event, 'end');
    assert.equal(JSON.parse(end.data), { state: 'succeeded', exit: 0 });
    const plain = await plainLog(server, id);
    assert.is(stream.text(), plain);
    // Each id is o:BYTES, the bytes of output.log sent up to and including that event.
    let bytes = 0;
    for (const e of stream.events.filter((x) => x.event === 'message')) {
      bytes += Buffer.byteLength(`${e.data}\n`);
      assert.is(e.id, `o:${bytes}`);
    }
    assert.ok(stream.events.filter((e) => e.event === 'message').length > 3, 'more than one piece: it was live');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('30 followers joining while a job prints fast each get the whole log once: no line lost, none twice', async () => {
  const { dir, server } = await startFake(['o/ticker']);
  try {
    const id = await runningTicker(dir, server, 400, 0.01);
    const streams = [];
    for (let i = 0; i < 30; i++) {
      streams.push(await openEventStream(followUrl(server, id), auth));
      await new Promise((r) => setTimeout(r, 40));
    }
    await Promise.all(streams.map((s) => s.ended));
    const plain = await plainLog(server, id);
    assert.match(plain, 'tick 400 of 400');
    for (const [i, s] of streams.entries()) {
      assert.is(s.events.at(-1)!.event, 'end', `follower ${i}`);
      assert.is(s.text(), plain, `follower ${i}`);
    }
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('Last-Event-ID resumes a running and a finished job where it was; a finished job is sent whole with end at once', async () => {
  const { dir, server } = await startFake(['o/ticker']);
  try {
    const id = await runningTicker(dir, server, 12, 0.15);
    const first = await openEventStream(followUrl(server, id), auth);
    await first.waitFor((s) => s.text().includes('tick 2 of'), 15_000, 'tick 2');
    first.close();
    const seen = first.text();
    const lastId = first.events.filter((e) => e.id).at(-1)!.id!;
    assert.is(lastId, `o:${Buffer.byteLength(seen)}`);
    const resumed = await openEventStream(followUrl(server, id), { ...auth, 'Last-Event-ID': lastId });
    await resumed.ended;
    assert.is(resumed.events.at(-1)!.event, 'end');
    assert.is(seen + resumed.text(), await plainLog(server, id), 'nothing lost, nothing twice');
    assert.not.ok(resumed.text().includes('tick 1 of'));

    // Finished: everything, then end.
    const t0 = Date.now();
    const whole = await openEventStream(followUrl(server, id), auth);
    await whole.ended;
    assert.ok(Date.now() - t0 < 2_000, 'a finished job does not wait for polls');
    assert.is(whole.text(), await plainLog(server, id));
    assert.equal(JSON.parse(whole.events.at(-1)!.data), { state: 'succeeded', exit: 0 });
    const rest = await openEventStream(followUrl(server, id), { ...auth, 'Last-Event-ID': lastId });
    await rest.ended;
    assert.is(seen + rest.text(), await plainLog(server, id));
    // An id that is not ours (or past the end) starts over rather than failing.
    const odd = await openEventStream(followUrl(server, id), { ...auth, 'Last-Event-ID': 'o:99999999' });
    await odd.ended;
    assert.is(odd.text(), await plainLog(server, id));
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('refused: no token 401, wrong token 401, unknown job 404, malformed id 404, POST 405; nothing streamed', async () => {
  const { server } = await startFake(['o/ticker']);
  try {
    const id = await push(server, 'o/ticker');
    for (const [headers, status] of [
      [{}, 401],
      [{ Authorization: 'Bearer nope' }, 401],
      [{ Authorization: `Basic ${TOKEN}` }, 401],
    ] as const) {
      const res = await fetch(followUrl(server, id), { headers });
      assert.is(res.status, status);
      assert.not.match(String(res.headers.get('content-type')), /event-stream/);
      assert.not.match(await res.text(), /tick/);
    }
    const unknown = await fetch(`${server.url}/jobs/${id.replace(/.$/, (c) => (c === '0' ? '1' : '0'))}/log?follow=1`, {
      headers: auth,
    });
    assert.is(unknown.status, 404);
    const malformed = await fetch(`${server.url}/jobs/..%2F..%2Fetc/log?follow=1`, { headers: auth });
    assert.is(malformed.status, 404);
    const post = await fetch(followUrl(server, id), { method: 'POST', headers: auth });
    assert.is(post.status, 405);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('ui: public shows states to anyone but never a live log: 401 without the token, and no follow on the job page', async () => {
  const dir = tmpDir('shipkit-follow-');
  const config = writeConfig(dir, { repos: { 'o/ticker': {} } });
  appendFileSync(config, 'ui: public\n');
  writeFileSync(path.join(dir, 'ticker-lines'), '100');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--grace', '0.5'], {
    env: fakeEnv,
  });
  try {
    const id = await push(server, 'o/ticker');
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const res = await fetch(followUrl(server, id));
    assert.is(res.status, 401);
    assert.not.match(await res.text(), /tick/);
    const page = await fetch(`${server.url}/jobs/${id}`, { headers: { Accept: 'text/html' } });
    assert.is(page.status, 200);
    const html = await page.text();
    assert.not.match(html, /data-follow|log-follow\.js/);
    assert.not.match(html, /tick 1/);
    const signedIn = await fetch(`${server.url}/jobs/${id}`, { headers: { Accept: 'text/html', ...auth } });
    assert.match(await signedIn.text(), `data-follow="/jobs/${id}/log?follow=1"`);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

const login = (server: Server) => logIn(server, TOKEN);

/** Resolves with how long `stream` took to end, or rejects after `ms`. */
async function endsWithin(stream: { ended: Promise<void> }, ms: number, what: string): Promise<number> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: the stream was still open after ${ms} ms`)), ms);
  });
  await Promise.race([stream.ended, late]).finally(() => clearTimeout(timer));
  return Date.now() - t0;
}

test("a stream opened with a session cookie ends at logout (and at --end-sessions); the bearer's and another session's go on", async () => {
  const { dir, server } = await startFake(['o/ticker'], ['--grace', '0.5']);
  try {
    const id = await runningTicker(dir, server, 1000, 0.1);
    const [mine, other] = [await login(server), await login(server)];
    const byCookie = await openEventStream(followUrl(server, id), { Cookie: mine });
    const byOther = await openEventStream(followUrl(server, id), { Cookie: other });
    const byBearer = await openEventStream(followUrl(server, id), auth);
    for (const s of [byCookie, byOther, byBearer]) {
      assert.is(s.status, 200);
      await s.waitFor((x) => x.text().includes('tick 2 of'), 15_000, 'tick 2');
    }

    const out = await fetch(`${server.url}/logout`, { method: 'POST', headers: { Cookie: mine }, redirect: 'manual' });
    assert.is(out.status, 303);
    await endsWithin(byCookie, 1_000, 'after logout');
    const again = await openEventStream(followUrl(server, id), { Cookie: mine });
    assert.is(again.status, 401, 'the ended session opens no new stream');
    await again.ended;
    const otherSeen = byOther.received;
    await byOther.waitFor((x) => x.received > otherSeen, 5_000, "more lines for another session's stream");

    // Ended by another process: the server finds it within its check (about a second).
    const ended = await runScript('hook-server', ['--end-sessions', '--config', path.join(dir, 'shipkit.yml')], {
      env: fakeEnv,
    });
    assert.is(ended.exitCode, 0, ended.stderr);
    await endsWithin(byOther, 2_500, 'after --end-sessions');

    const seen = byBearer.received;
    await byBearer.waitFor((x) => x.received > seen, 5_000, 'more lines for the bearer');
    assert.is(byBearer.events.at(-1)!.event, 'message', "the bearer token's stream goes on");
    byBearer.close();
  } finally {
    await server.stop();
  }
});

test('a line written in three pieces, cut inside a UTF-8 character, arrives whole in one event', async () => {
  const { server } = await startFake(['o/split']);
  try {
    const id = await push(server, 'o/split');
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const stream = await openEventStream(followUrl(server, id), auth);
    await stream.ended;
    const data = stream.events.filter((e) => e.event === 'message').map((e) => e.data);
    assert.ok(
      data.includes('first half, second half é end') ||
        data.some((d) => d.split('\n').includes('first half, second half é end')),
      JSON.stringify(data),
    );
    assert.not.ok(
      data.some((d) => d.includes('\uFFFD')),
      'no broken character',
    );
    assert.is(stream.text(), await plainLog(server, id));
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('200 followers of one job: the 201st is answered 503 with Retry-After; one leaving frees a place; stop ends them all', async () => {
  // Still running when the test stops the server, which then interrupts it after --grace.
  const { dir, server } = await startFake(['o/ticker'], ['--grace', '0.5']);
  try {
    const id = await runningTicker(dir, server, 1000, 0.1);
    const streams = [];
    for (let i = 0; i < 200; i++) streams.push(await openEventStream(followUrl(server, id), auth));
    assert.ok(streams.every((s) => s.status === 200));
    const over = await openEventStream(followUrl(server, id), auth);
    assert.is(over.status, 503);
    assert.is(over.headers['retry-after'], '10');
    await over.ended;
    assert.match(over.body, /too many followers/);
    streams[0].close();
    await waitFor(
      async () =>
        (await openEventStream(followUrl(server, id), auth).then((s) => {
          s.close();
          return s.status;
        })) === 200,
      { what: 'a freed place' },
    );
    // Every follower is fed by the one tail.
    await Promise.all(streams.slice(1).map((s) => s.waitFor((x) => x.text().includes('tick 5 of'), 20_000, 'tick 5')));
    const stopped = server.stop();
    await Promise.all(streams.slice(1).map((s) => s.ended));
    assert.is(await stopped, 0);
  } finally {
    await server.stop();
  }
});

test('a follower that stops reading is dropped and the server does not hold its output; the others get everything', async () => {
  const { dir, server } = await startFake(['o/chatty']);
  try {
    writeFileSync(path.join(dir, 'hold'), '');
    writeFileSync(path.join(dir, 'gate'), '');
    const id = await push(server, 'o/chatty');
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const rssBefore = vmRssKb(server.child.pid!);
    // A raw socket that sends the request and, once its answer has begun, never reads again. The
    // job prints nothing before both followers are in, so they follow live (a follower that stalls
    // while catching up from the file is given longer, 30 s, and would not be cut in time here).
    const stalled = net.connect(server.port, '127.0.0.1');
    stalled.write(`GET /jobs/${id}/log?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    await new Promise<void>((resolve) =>
      stalled.once('data', () => {
        stalled.pause();
        resolve();
      }),
    );
    const reader = await openEventStream(followUrl(server, id), auth);
    await reader.waitFor((s) => s.comments.length > 0 || s.received > 0, 15_000, 'the reader to be in');
    rmSync(path.join(dir, 'gate'));
    await reader.waitFor((s) => s.received >= 39_000_000, 60_000, '40 MB of output');
    await waitFor(() => /live log follower dropped/.test(server.output()), { what: 'the stalled follower to be cut' });
    const grown = (vmRssKb(server.child.pid!) - rssBefore) / 1024;
    // Under Deno the server's RSS grows by 45-50 MB for 40 MB streamed even with no stalled
    // follower at all (garbage from each write, freed some 30 s later), so RSS cannot tell a held
    // output there: the bound is checked under Node, the drop and the bytes under both.
    if (RUNTIME === 'deno')
      console.log(`  deno: server memory grew by ${grown.toFixed(1)} MB for 40 MB of output (not bounded under Deno)`);
    // Held output would be all 40 MB (and more as queued chunks); garbage not yet collected
    // reaches 33 MB on a loaded CI machine (three test files at once), so the bound sits between.
    else assert.ok(grown < 38, `server memory grew by ${grown.toFixed(1)} MB for 40 MB of output`);
    stalled.destroy();
    rmSync(path.join(dir, 'hold'));
    await reader.ended;
    assert.is(reader.events.at(-1)!.event, 'end');
    assert.is(
      reader
        .text()
        .split('\n')
        .filter((l) => /^y+$/.test(l))
        .join('').length,
      40_000_000,
      'the reading follower got every byte',
    );
  } finally {
    await server.stop();
  }
});

test('a job that ends while the tail is megabytes behind: its follower still gets every byte, though output.log is trimmed at the end', async () => {
  const { dir, server } = await startFake(['o/chatty']);
  try {
    writeFileSync(path.join(dir, 'gate'), '');
    const id = await push(server, 'o/chatty');
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const reader = await openEventStream(followUrl(server, id), auth);
    await reader.waitFor((s) => s.comments.length > 0 || s.received > 0, 15_000, 'the reader to be in');
    // No hold: the build prints 40 MB and ends at once, long before the tail (8 MB a tick) has
    // read it all; its runner then writes the trimmed output.log (8 MB) over the full one.
    rmSync(path.join(dir, 'gate'));
    await reader.ended;
    assert.is(reader.events.at(-1)!.event, 'end');
    assert.ok((await plainLog(server, id)).length < 10_000_000, 'output.log was trimmed');
    assert.is(
      reader
        .text()
        .split('\n')
        .filter((l) => /^y+$/.test(l))
        .join('').length,
      40_000_000,
      'the follower got every byte',
    );
  } finally {
    await server.stop();
  }
});

test('a real build: its own log (logs.txt section) streams live, with the repo secret masked as in the plain log', async () => {
  const secretValue = `hunter-${randomUUID()}`;
  const site = await makeSite(
    { 'lprc.js': 'module.exports = () => {};\n' },
    'env:\n  DEPLOY_KEY: env:FOLLOW_SECRET\ncompile: for i in $(seq 1 12); do echo "compiling $i $DEPLOY_KEY"; sleep 0.3; done',
    'secret: env:HOOK_SECRET\ntoken: env:HOOK_TOKEN',
  );
  const server = await startScript('hook-server', ['--config', site.config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, FOLLOW_SECRET: secretValue },
  });
  try {
    const res = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: site.first, cloneUrl: site.bare }),
      SECRET,
    );
    assert.is(res.status, 202);
    const id = String(res.json.job);
    await waitForJobState(server.url, TOKEN, id, ['running']);
    const stream = await openEventStream(followUrl(server, id), auth);
    await stream.waitFor((s) => s.text().includes('compiling 2'), 60_000, 'compiling 2');
    assert.ok(['running'].includes((await fetchJob(server.url, TOKEN, id)).state));
    await stream.ended;
    assert.equal(JSON.parse(stream.events.at(-1)!.data), { state: 'succeeded', exit: 0 });
    // After a reset (output.log until the build wrote its header), the build's own section.
    const lastReset = stream.events.map((e) => e.event).lastIndexOf('reset');
    const text = stream.events
      .slice(lastReset + 1)
      .filter((e) => e.event === 'message')
      .map((e) => `${e.data}\n`)
      .join('');
    assert.is(text, await plainLog(server, id));
    assert.match(text, /^=== shipkit job \S+ start/);
    assert.match(text, /compiling 12 \*\*\*/);
    assert.not.ok(
      stream.events.some((e) => e.data.includes(secretValue)),
      'the secret never went out',
    );
    assert.ok(stream.events.filter((e) => e.event === 'message').every((e) => /^[os]:\d+$/.test(e.id!)));
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test.run();
