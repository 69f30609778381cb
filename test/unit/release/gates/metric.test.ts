// Prometheus metric gates (lib/release/gates/metric.ts): each `gates:` entry parsed or refused with
// its message; readGate and holdGates against a real node:http server on 127.0.0.1 that answers as
// Prometheus's /api/v1/query does (or not: 500, garbage, NaN, ±Inf, no series, two, a stall).
// Holds that span seconds run on an injected clock, so each round's time is asserted exactly.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { messageOf } from '../../../../lib/core/errors.ts';
import { holdGates, parseGate, readGate, type MetricGate } from '../../../../lib/release/gates/metric.ts';
import { closedPort } from '../../../_helpers/common.ts';

const QUERY = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))';

/** `stall`: no answer at all; `stall-body`: its head and the body's first bytes, then nothing. */
type Canned = { status?: number; body: string } | 'stall' | 'stall-body';

const success = (data: unknown) => JSON.stringify({ status: 'success', data });
/** An instant vector answer: one series per [labels, value]. */
const vector = (...series: Array<[Record<string, string>, string]>) =>
  success({ resultType: 'vector', result: series.map(([metric, v]) => ({ metric, value: [1_700_000_000.123, v] })) });
const one = (value: string) => vector([{}, value]);

/** A Prometheus stand-in: `answer` picks each reply; every query it was asked is kept. */
async function prometheus(answer: (query: string) => Canned) {
  const asked: Array<{ method: string; path: string; query: string | null }> = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    asked.push({ method: req.method!, path: url.pathname, query: url.searchParams.get('query') });
    const reply = answer(url.searchParams.get('query') ?? '');
    if (reply === 'stall') return;
    if (reply === 'stall-body') return void res.writeHead(200).write('{"status":');
    res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' });
    res.end(reply.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    asked,
    gate: (extra: Partial<MetricGate> = {}): MetricGate => ({
      prometheus: url,
      query: QUERY,
      max: 0.01,
      forSec: 0,
      text: QUERY,
      ...extra,
    }),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A clock that moves only when the hold sleeps: each round's time is exact. */
function fakeTime(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t, sleep: async (ms: number) => void (clock.t += ms) };
  return clock;
}

test('parseGate: a full entry, for: in s, m or h (default 0s), the URL kept without its trailing slash', () => {
  const url = 'http://127.0.0.1:9090';
  assert.equal(parseGate({ prometheus: url, query: QUERY, max: 0.01, for: '60s' }), {
    prometheus: url,
    query: QUERY,
    max: 0.01,
    forSec: 60,
    text: QUERY,
  });
  const cases: Array<[Record<string, unknown>, Partial<MetricGate>]> = [
    [{ for: '2m' }, { forSec: 120 }],
    [{ for: '1h' }, { forSec: 3600 }],
    [{ for: '0s' }, { forSec: 0 }],
    [{}, { forSec: 0 }],
    [{ max: 0 }, { max: 0 }],
    [{ max: -1.5 }, { max: -1.5 }],
    [{ prometheus: 'https://prom.example.com/prometheus/' }, { prometheus: 'https://prom.example.com/prometheus' }],
    [{ query: '  up == 0  ' }, { query: '  up == 0  ', text: 'up == 0' }],
  ];
  for (const [change, expected] of cases) {
    const gate = parseGate({ prometheus: url, query: QUERY, max: 0.01, ...change });
    for (const [key, value] of Object.entries(expected))
      assert.equal(gate[key as keyof MetricGate], value, JSON.stringify(change));
  }
});

test('parseGate: each mistake refused with a message that names it', () => {
  const good = { prometheus: 'http://127.0.0.1:9090', query: QUERY, max: 0.01, for: '60s' };
  const cases: Array<[unknown, string]> = [
    [
      'http://127.0.0.1:9090',
      'must be a mapping such as { prometheus: http://127.0.0.1:9090, query: …, max: 0.01, for: 60s }, not "http://127.0.0.1:9090".',
    ],
    [
      [good],
      'must be a mapping such as { prometheus: http://127.0.0.1:9090, query: …, max: 0.01, for: 60s }, not [{"prometheus":"http://127.0.0.1:9090","query":"sum(rate(....',
    ],
    [{ ...good, min: 0 }, 'has unknown key min: a gate takes prometheus, query, max and for.'],
    [{ ...good, url: 'x', timeout: 5 }, 'has unknown keys url, timeout: a gate takes prometheus, query, max and for.'],
    [
      { ...good, prometheus: undefined },
      "prometheus: is missing: give Prometheus's URL, such as http://127.0.0.1:9090.",
    ],
    [
      { ...good, prometheus: 'ftp://127.0.0.1:9090' },
      'prometheus: must be an http(s) URL such as http://127.0.0.1:9090, not "ftp://127.0.0.1:9090".',
    ],
    [
      { ...good, prometheus: '127.0.0.1:9090' },
      'prometheus: must be an http(s) URL such as http://127.0.0.1:9090, not "127.0.0.1:9090".',
    ],
    [{ ...good, prometheus: 9090 }, 'prometheus: must be an http(s) URL such as http://127.0.0.1:9090, not 9090.'],
    [
      { ...good, prometheus: 'http://admin:pw@127.0.0.1:9090' },
      'prometheus: must not hold a user or password: the URL is shown in every message about the gate.',
    ],
    [
      { ...good, prometheus: 'http://127.0.0.1:9090/api/v1/query?query=up' },
      'prometheus: must be Prometheus\'s base URL without ?… or #… (/api/v1/query is added), not "http://127.0.0.1:9090/api/v1/query?query=up".',
    ],
    [
      { ...good, query: undefined },
      'query: must be the PromQL to ask, such as sum(rate(…[1m])) / sum(rate(…[1m])), not nothing.',
    ],
    [
      { ...good, query: '  ' },
      'query: must be the PromQL to ask, such as sum(rate(…[1m])) / sum(rate(…[1m])), not "  ".',
    ],
    [{ ...good, max: '0.01' }, 'max: must be a number, such as 0.01 (the highest value that passes), not "0.01".'],
    [{ ...good, max: undefined }, 'max: must be a number, such as 0.01 (the highest value that passes), not nothing.'],
    [{ ...good, max: Infinity }, 'max: must be a number, such as 0.01 (the highest value that passes), not null.'],
    [{ ...good, for: 60 }, 'for: must be a duration such as 60s, 2m or 0s, at most 24h, not 60.'],
    [{ ...good, for: '1 minute' }, 'for: must be a duration such as 60s, 2m or 0s, at most 24h, not "1 minute".'],
    [{ ...good, for: '25h' }, 'for: must be a duration such as 60s, 2m or 0s, at most 24h, not "25h".'],
  ];
  for (const [raw, message] of cases) {
    let got = 'accepted';
    try {
      parseGate(raw);
    } catch (error) {
      got = messageOf(error);
    }
    assert.is(got, message, JSON.stringify(raw));
  }
});

test('readGate: GET /api/v1/query under the base URL, the query sent as written; a vector of one series or a scalar is read', async () => {
  let reply = one('0.002');
  const p = await prometheus(() => ({ body: reply }));
  try {
    assert.equal(await readGate(p.gate({ prometheus: `${p.url}/prom` })), { kind: 'ok', value: 0.002 });
    assert.equal(p.asked, [{ method: 'GET', path: '/prom/api/v1/query', query: QUERY }]);
    assert.equal(await readGate(p.gate({ max: 0.002 })), { kind: 'ok', value: 0.002 }, 'at max passes');
    reply = one('0.5');
    assert.equal(await readGate(p.gate()), { kind: 'over', value: 0.5 });
    reply = one('1e-05');
    assert.equal(await readGate(p.gate()), { kind: 'ok', value: 0.00001 });
    reply = success({ resultType: 'scalar', result: [1_700_000_000.1, '0.003'] });
    assert.equal(await readGate(p.gate()), { kind: 'ok', value: 0.003 });
  } finally {
    await p.close();
  }
});

test('readGate: every answer that is not one finite value is unreadable, and says why', async () => {
  let reply: Canned = { body: '' };
  const p = await prometheus(() => reply);
  const where = `Prometheus at ${p.url}`;
  const cases: Array<[string, Canned, string]> = [
    ['500', { status: 500, body: 'oops' }, `${where} answered 500`],
    [
      '400 with its error',
      { status: 400, body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: '1:5: parse\nerror' }) },
      `${where} answered 400: 1:5: parse error`,
    ],
    ['garbage', { body: '<html>proxy error</html>' }, `${where} answered something other than JSON`],
    [
      'status: error',
      { body: JSON.stringify({ status: 'error', error: 'query timed out' }) },
      `${where} answered status "error": query timed out`,
    ],
    ['NaN', { body: one('NaN') }, `${where} answered NaN (0/0: is there no traffic to divide by?)`],
    ['+Inf', { body: one('+Inf') }, `${where} answered +Inf (a division by zero?)`],
    ['-Inf', { body: one('-Inf') }, `${where} answered -Inf (a division by zero?)`],
    ['not a number', { body: one('abc') }, `${where} answered the value "abc", not a number`],
    [
      'no value',
      { body: vector() },
      `${where} answered an empty vector: the query matched no series (check its metric names and labels, and that they are scraped)`,
    ],
    [
      'two series',
      { body: vector([{ code: '500' }, '0.5'], [{ code: '502' }, '0.001']) },
      `${where} answered 2 series ({code="500"}, {code="502"}), not one: which one the gate means is ambiguous; aggregate them (sum, max) into one`,
    ],
    [
      'a matrix',
      { body: success({ resultType: 'matrix', result: [] }) },
      `${where} answered a "matrix" result: a gate's query must give one series or a scalar`,
    ],
    ['over 1 MB', { body: one(`0.${'1'.repeat(1024 * 1024)}`) }, `${where} answered more than 1 MB`],
  ];
  try {
    for (const [name, canned, why] of cases) {
      reply = canned;
      assert.equal(await readGate(p.gate()), { kind: 'unreadable', why }, name);
    }
  } finally {
    await p.close();
  }
});

test('readGate: nothing listening, or no whole answer within timeoutMs, is unreadable', async () => {
  const port = await closedPort();
  const down = await readGate({ prometheus: `http://127.0.0.1:${port}`, query: 'up', max: 1, forSec: 0, text: 'up' });
  assert.is(down.kind, 'unreadable');
  assert.match((down as { why: string }).why, `Prometheus at http://127.0.0.1:${port} could not be reached (`);
  let stall: Canned = 'stall';
  const p = await prometheus(() => stall);
  try {
    for (const how of ['stall', 'stall-body'] as const) {
      stall = how;
      const t0 = Date.now();
      assert.equal(
        await readGate(p.gate(), { timeoutMs: 200 }),
        { kind: 'unreadable', why: `Prometheus at ${p.url} did not answer within 0.2 s` },
        how,
      );
      assert.ok(Date.now() - t0 < 2_000, `${how}: ${Date.now() - t0} ms`);
    }
  } finally {
    await p.close();
  }
});

test('holdGates: no gates pass at once; with for: 0s one good reading passes', async () => {
  const lines: string[] = [];
  const none = await holdGates([], { deadline: 0, print: (l) => lines.push(l) });
  assert.equal(none, { pass: true, readings: [] });
  const p = await prometheus(() => ({ body: one('0.002') }));
  try {
    const outcome = await holdGates([p.gate()], { deadline: Date.now() + 10_000, print: (l) => lines.push(l) });
    assert.equal(outcome, { pass: true, readings: [`gate "${QUERY}": 0.002 ≤ 0.01, held 0 s of 0 s`] });
    assert.is(p.asked.length, 1);
    assert.equal(lines, [`gate "${QUERY}": 0.002 ≤ 0.01, held 0 s of 0 s`]);
  } finally {
    await p.close();
  }
});

test('holdGates: a reading over max halts with rollback; the value, the max and the query in the reason', async () => {
  const time = fakeTime();
  const start = time.t;
  const p = await prometheus(() => ({ body: one(time.t - start < 4_000 ? '0.001' : '0.25') }));
  const lines: string[] = [];
  try {
    const outcome = await holdGates([p.gate({ forSec: 60 })], {
      deadline: start + 120_000,
      print: (l) => lines.push(l),
      now: time.now,
      sleep: time.sleep,
    });
    assert.equal(outcome, {
      pass: false,
      rollback: true,
      reason: `gate "${QUERY}" read 0.25, over its max 0.01 (Prometheus at ${p.url})`,
    });
    assert.is(time.t - start, 4_000, 'the first reading over max ends the hold');
    assert.equal(lines, [
      `gate "${QUERY}": 0.001 ≤ 0.01, held 0 s of 60 s`,
      `gate "${QUERY}": 0.25 > 0.01, over its max`,
    ]);
  } finally {
    await p.close();
  }
});

test('holdGates: unreadable until the deadline holds, never passes, and fails without rollback at the deadline', async () => {
  const time = fakeTime();
  const start = time.t;
  const at: number[] = [];
  const p = await prometheus(() => (at.push(time.t - start), { status: 503, body: 'unavailable' }));
  const lines: string[] = [];
  try {
    const outcome = await holdGates([p.gate({ forSec: 0 })], {
      deadline: start + 5_000,
      print: (l) => lines.push(l),
      now: time.now,
      sleep: time.sleep,
    });
    assert.equal(outcome, {
      pass: false,
      rollback: false,
      reason: `gate "${QUERY}" could not be read before the deadline: Prometheus at ${p.url} answered 503`,
    });
    assert.equal(at, [0, 2_000, 4_000, 5_000], 'asked each pollMs, and once more at the deadline');
    assert.equal(lines, [
      `gate "${QUERY}": cannot be read: Prometheus at ${p.url} answered 503; not held, asking again for up to 5 s`,
    ]);
  } finally {
    await p.close();
  }
});

test('holdGates: a Prometheus that stalls (each query cut at timeoutMs) holds, then fails at the deadline', async () => {
  const p = await prometheus(() => 'stall');
  const lines: string[] = [];
  try {
    const t0 = Date.now();
    const outcome = await holdGates([p.gate()], {
      deadline: t0 + 1_000,
      pollMs: 200,
      timeoutMs: 200,
      print: (l) => lines.push(l),
    });
    const took = Date.now() - t0;
    assert.equal(outcome, {
      pass: false,
      rollback: false,
      reason: `gate "${QUERY}" could not be read before the deadline: Prometheus at ${p.url} did not answer within 0.2 s`,
    });
    assert.ok(took >= 1_000 && took < 3_000, `${took} ms`);
    assert.ok(p.asked.length >= 3, `${p.asked.length} queries`);
    assert.is(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], 'cannot be read');
  } finally {
    await p.close();
  }
});

test('holdGates: after unreadable readings, passes only once a whole for: of good readings has followed', async () => {
  const time = fakeTime();
  const start = time.t;
  const at: number[] = [];
  // 500 until 4 s, good after; one garbage answer at 10 s restarts the clock.
  const p = await prometheus(() => {
    const t = time.t - start;
    at.push(t);
    if (t < 4_000) return { status: 500, body: '' };
    if (t === 10_000) return { body: 'not json' };
    return { body: one(t < 14_000 ? '0.002' : '0.004') };
  });
  const lines: string[] = [];
  try {
    const outcome = await holdGates([p.gate({ forSec: 10 })], {
      deadline: start + 60_000,
      print: (l) => lines.push(l),
      now: time.now,
      sleep: time.sleep,
    });
    assert.equal(outcome, { pass: true, readings: [`gate "${QUERY}": 0.004 ≤ 0.01, held 10 s of 10 s`] });
    assert.equal(at, [0, 2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 18_000, 20_000, 22_000]);
    assert.equal(lines, [
      `gate "${QUERY}": cannot be read: Prometheus at ${p.url} answered 500; not held, asking again for up to 60 s`,
      `gate "${QUERY}": 0.002 ≤ 0.01, held 0 s of 10 s`,
      `gate "${QUERY}": cannot be read: Prometheus at ${p.url} answered something other than JSON; not held, asking again for up to 50 s`,
      `gate "${QUERY}": 0.002 ≤ 0.01, held 0 s of 10 s`,
      `gate "${QUERY}": 0.004 ≤ 0.01, held 2 s of 10 s`,
    ]);
  } finally {
    await p.close();
  }
});

test("holdGates: several gates pass together, each after its own for:; good readings hold past the caller's deadline", async () => {
  const time = fakeTime();
  const start = time.t;
  const at: number[] = [];
  const p = await prometheus((query) => (at.push(time.t - start), { body: one(query === 'up' ? '1' : '0') }));
  try {
    const outcome = await holdGates([p.gate({ forSec: 3 }), p.gate({ query: 'up', text: 'up', max: 1, forSec: 0 })], {
      deadline: start + 1_000,
      print: () => {},
      now: time.now,
      sleep: time.sleep,
    });
    assert.equal(outcome, {
      pass: true,
      readings: [`gate "${QUERY}": 0 ≤ 0.01, held 3 s of 3 s`, 'gate "up": 1 ≤ 1, held 0 s of 0 s'],
    });
    assert.equal(
      at,
      [0, 0, 2_000, 2_000, 3_000, 3_000],
      'the last round comes as the 3 s are up, not at the next poll',
    );
  } finally {
    await p.close();
  }
});

test('holdGates: an abort ends the hold by throwing', async () => {
  const p = await prometheus(() => ({ body: one('0') }));
  const controller = new AbortController();
  try {
    const held = holdGates([p.gate({ forSec: 60 })], {
      deadline: Date.now() + 60_000,
      print: () => controller.abort(new Error('stopped by the operator')),
      signal: controller.signal,
    });
    await held.then(
      () => assert.unreachable('it passed'),
      (error) => assert.is(messageOf(error), 'stopped by the operator'),
    );
  } finally {
    await p.close();
  }
});

test.run();
