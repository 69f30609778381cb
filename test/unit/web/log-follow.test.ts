// lib/web/log-follow.ts in-process, with its timings and caps turned down: keepalive comments and
// retry:, the total cap across jobs, a queued job whose output appears later, a job that ends
// with nobody reading, and close(). A real HTTP server on 127.0.0.1 and real files; the jobs'
// states are set by the test.
import { appendFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { createLogFollow, type FollowedJob } from '../../../lib/web/log-follow.ts';
import { openEventStream } from '../../fixtures/hooks/event-stream.ts';
import { tmpDir, waitFor } from '../../_helpers/common.ts';

async function setUp(options: { maxTotal?: number; maxPerJob?: number } = {}) {
  const dir = tmpDir('shipkit-follow-unit-');
  const jobs = new Map<string, FollowedJob>();
  const follow = createLogFollow({
    jobsDir: path.join(dir, 'jobs'),
    logsDirOf: (repo) => path.join(dir, 'logs', repo.replace('/', '__')),
    jobOf: (id) => jobs.get(id),
    readSection: async () => undefined,
    log: silentLogger,
    pollMs: 50,
    keepaliveMs: 200,
    retryMs: 1234,
    ...options,
  });
  const server = http.createServer((req, res) => {
    const job = jobs.get(req.url!.slice(1));
    if (!job) {
      res.writeHead(404).end();
      return;
    }
    void follow.handle(req, res, job);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const write = (id: string, text: string) => {
    mkdirSync(path.join(dir, 'jobs', id), { recursive: true });
    appendFileSync(path.join(dir, 'jobs', id, 'output.log'), text);
  };
  const add = (id: string, state = 'running') => {
    jobs.set(id, { id, repo: 'o/r', state, exit: null });
  };
  const end = (id: string, state: string, exit: number | null) => {
    jobs.set(id, { id, repo: 'o/r', state, exit });
  };
  const writeSection = (text: string) => {
    mkdirSync(path.join(dir, 'logs', 'o__r'), { recursive: true });
    appendFileSync(path.join(dir, 'logs', 'o__r', 'logs.txt'), text);
  };
  const stop = async () => {
    follow.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return { url, follow, write, writeSection, add, end, stop };
}

test('retry: first, keepalive comments while quiet; a queued job with no output yet streams once it prints', async () => {
  const t = await setUp();
  try {
    t.add('j1', 'queued');
    const s = await openEventStream(`${t.url}/j1`);
    assert.is(s.status, 200);
    await s.waitFor((x) => x.comments.filter((c) => c === 'keepalive').length >= 2, 3_000, 'two keepalives');
    assert.is(s.events.length, 0);
    assert.is(s.retry, 1234);
    t.add('j1', 'running');
    t.write('j1', 'hello\nwor');
    await s.waitFor((x) => x.text() === 'hello\n', 3_000, 'the first line');
    t.write('j1', 'ld\n');
    await s.waitFor((x) => x.text() === 'hello\nworld\n', 3_000, 'the second line, whole');
    t.write('j1', 'no newline at the end');
    t.end('j1', 'failed', 2);
    await s.ended;
    assert.is(s.text(), 'hello\nworld\nno newline at the end\n');
    assert.equal(s.events.at(-1), { event: 'end', id: undefined, data: '{"state":"failed","exit":2}' });
    assert.equal(t.follow.stats(), { tails: 0, followers: 0 });
  } finally {
    await t.stop();
  }
});

test('the total cap counts followers of every job; a tail stops when its last follower leaves', async () => {
  const t = await setUp({ maxTotal: 3, maxPerJob: 2 });
  try {
    for (const id of ['a', 'b']) {
      t.add(id);
      t.write(id, `${id}\n`);
    }
    const a1 = await openEventStream(`${t.url}/a`);
    const a2 = await openEventStream(`${t.url}/a`);
    const a3 = await openEventStream(`${t.url}/a`);
    assert.is(a3.status, 503, 'per job');
    const b1 = await openEventStream(`${t.url}/b`);
    const b2 = await openEventStream(`${t.url}/b`);
    assert.equal([a1.status, a2.status, b1.status, b2.status], [200, 200, 200, 503], 'in total');
    await waitFor(() => t.follow.stats().tails === 2, { what: 'two tails' });
    b1.close();
    await waitFor(() => t.follow.stats().tails === 1, { what: "b's tail to stop" });
    assert.is(t.follow.stats().followers, 2);
    // close(): every stream ends, new ones are refused.
    t.follow.close();
    await Promise.all([a1.ended, a2.ended]);
    const late = await openEventStream(`${t.url}/a`);
    assert.is(late.status, 503);
  } finally {
    await t.stop();
  }
});

test('output.log until the build writes its header to logs.txt, then reset and the section, up to its trailer only', async () => {
  const t = await setUp();
  const id = '20261122-120000-aaaaaa';
  try {
    t.writeSection(
      '=== shipkit job 20261122-110000-bbbbbb start {}\n11:00:00.000 | an older job\n=== shipkit job 20261122-110000-bbbbbb end {}\n',
    );
    t.add(id);
    t.write(id, '# attempt 1: build o/r\n');
    const s = await openEventStream(`${t.url}/${id}`);
    await s.waitFor((x) => x.text() === '# attempt 1: build o/r\n', 3_000, 'output.log');
    const header = `=== shipkit job ${id} start {}\n`;
    t.writeSection(`${header}12:00:00.000 | step one\n`);
    await s.waitFor(
      (x) => x.events.some((e) => e.event === 'reset') && x.text().includes('step one'),
      3_000,
      'the switch',
    );
    t.writeSection(
      `=== shipkit job ${id} end {}\n=== shipkit job 20261122-120500-cccccc start {}\n12:05:00.000 | the next job\n`,
    );
    await new Promise((r) => setTimeout(r, 300));
    t.end(id, 'succeeded', 0);
    await s.ended;
    const afterReset = s.events
      .slice(s.events.findIndex((e) => e.event === 'reset') + 1)
      .filter((e) => e.event === 'message');
    const text = afterReset.map((e) => `${e.data}\n`).join('');
    assert.is(text, `${header}12:00:00.000 | step one\n=== shipkit job ${id} end {}\n`);
    assert.is(afterReset.at(-1)!.id, `s:${Buffer.byteLength(text)}`);
    assert.not.ok(s.events.some((e) => e.data.includes('the next job') || e.data.includes('an older job')));
  } finally {
    await t.stop();
  }
});

test('a HEAD request gets the headers and no stream', async () => {
  const t = await setUp();
  try {
    t.add('h');
    const res = await fetch(`${t.url}/h`, { method: 'HEAD' });
    assert.is(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^text\/event-stream/);
    assert.is(res.headers.get('x-accel-buffering'), 'no');
    assert.equal(t.follow.stats(), { tails: 0, followers: 0 });
  } finally {
    await t.stop();
  }
});

test.run();
