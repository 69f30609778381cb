// The master side of a fleet update (lib/fleet/server-update.ts): slave-list parsing, the signed request path,
// and notifyTargets against real loopback servers: retries only on connection errors and 5xx,
// never on 4xx or timeouts; the concurrency bound measured on the server side; duplicates once.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import {
  notifyTargets,
  parseSlaveList,
  readSlaveList,
  requestPath,
  type NotifyOptions,
  type Target,
  type TargetResult,
} from '../../../lib/fleet/server-update.ts';
import { createRequestVerifier } from '../../../lib/http/signing.ts';
import { closedPort, tmpDir } from '../../_helpers/common.ts';

const SECRET = 'fleet-test-secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- parseSlaveList ---------------------------------------------------------------------------

const lists: Array<[string, string, string[]]> = [
  ['http with port', 'http://10.0.0.5:8080', ['http://10.0.0.5:8080']],
  ['path, trailing slash dropped', 'http://h.example:8080/hook/', ['http://h.example:8080/hook']],
  ['https without port', 'https://h.example', ['https://h.example']],
  ['bare host:port is http', 'h.example:8080', ['http://h.example:8080']],
  ['bare host:port/path', 'h.example:8080/x/y', ['http://h.example:8080/x/y']],
  ['IPv6', '[::1]:8080', ['http://[::1]:8080']],
  [
    'comments, blanks, CRLF, indentation',
    '# slaves\r\n\r\n   \r\n  http://a:1  \r\n# http://b:2\r\nc:3 # inline comment\r\n',
    ['http://a:1', 'http://c:3'],
  ],
  [
    'duplicates sent once',
    'a:1\nhttp://a:1\nhttp://a:1/\nHTTP://A:1\nhttp://a:1//\nb:2\n',
    ['http://a:1', 'http://b:2'],
  ],
  ['default port is the same target', 'http://a:80\nhttp://a\nhttps://b:443\nhttps://b\n', ['http://a', 'https://b']],
  ['different paths are different targets', 'a:1/x\na:1/y\na:1\n', ['http://a:1/x', 'http://a:1/y', 'http://a:1']],
  ['empty', '', []],
];

for (const [label, text, want] of lists) {
  test(`parseSlaveList: ${label}`, () => {
    assert.equal(
      parseSlaveList(text).map((t) => t.url),
      want,
    );
  });
}

test('parseSlaveList keeps the line number of each target', () => {
  assert.equal(parseSlaveList('# x\n\na:1\na:1\nb:2\n'), [
    { url: 'http://a:1', line: 3 },
    { url: 'http://b:2', line: 5 },
  ]);
});

const badLines: string[] = [
  'just-a-host',
  'host:port',
  'ftp://h:21',
  'file:///etc/passwd',
  'http://user:pw@h:1',
  'http://h:1/?repo=x',
  'http://h:1/#frag',
  'h 8080',
  'http://',
  'http://h:99999',
  'javascript:alert(1)',
  '/just/a/path',
];

for (const line of badLines) {
  test(`parseSlaveList refuses ${JSON.stringify(line)} with file:line`, () => {
    try {
      parseSlaveList(`good:1\n\n${line}\n`, '/etc/server-update/slavelist.txt');
      assert.unreachable('should throw');
    } catch (error) {
      assert.instance(error, ConfigError);
      assert.match(
        (error as Error).message,
        /^\/etc\/server-update\/slavelist\.txt:3: ".*" is not a target; write http:\/\/host:port/,
      );
    }
  });
}

test('readSlaveList: missing file, a list with no targets', async () => {
  const dir = tmpDir();
  const cases: Array<[string, string | null, RegExp]> = [
    [
      path.join(dir, 'missing.txt'),
      null,
      /slave list .*missing\.txt does not exist; pass --list FILE or set SERVER_UPDATE_LIST\./,
    ],
    [path.join(dir, 'empty.txt'), '', /has no targets/],
    [path.join(dir, 'comments.txt'), '# nothing\n\n', /has no targets/],
    [path.join(dir, 'bad.txt'), 'a:1\nnot a target\n', /bad\.txt:2: /],
  ];
  for (const [file, text, pattern] of cases) {
    if (text !== null) writeFileSync(file, text);
    try {
      await readSlaveList(file);
      assert.unreachable(`${file} should fail`);
    } catch (error) {
      assert.instance(error, ConfigError);
      assert.match((error as Error).message, pattern);
    }
  }
  writeFileSync(path.join(dir, 'ok.txt'), 'a:1\n');
  assert.equal(await readSlaveList(path.join(dir, 'ok.txt')), [{ url: 'http://a:1', line: 1 }]);
});

// ---- requestPath ------------------------------------------------------------------------------

const paths: Array<[string, string, boolean, string]> = [
  ['http://a:1', 'site', false, '/?repo=site'],
  ['http://a:1', 'site', true, '/?repo=site&wait=1'],
  ['http://a:1/hook', 'site', false, '/hook/?repo=site'],
  ['http://a:1/x/y', 'octo/site', true, '/x/y/?repo=octo%2Fsite&wait=1'],
  ['http://a:1', 'a&b=c', false, '/?repo=a%26b%3Dc'],
];

for (const [url, repo, wait, want] of paths) {
  test(`requestPath(${url}, ${repo}, wait=${wait}) → ${want}`, () => {
    assert.is(requestPath({ url, line: 1 }, repo, wait), want);
  });
}

// ---- notifyTargets against real servers --------------------------------------------------------

interface Hit {
  url: string;
  headers: http.IncomingHttpHeaders;
  verdict: string;
}

/** A loopback HTTP server that checks signatures and answers with `answer`. */
async function slave(answer: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void | Promise<void>) {
  const verifier = createRequestVerifier(SECRET);
  const hits: Hit[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = http.createServer(async (req, res) => {
    const verdict = verifier.verify(req.method!, req.url!, req.headers);
    hits.push({ url: req.url!, headers: req.headers, verdict: verdict.ok ? 'ok' : verdict.reason });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => inFlight--);
    await answer(req, res, hits.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    maxInFlight: () => maxInFlight,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
};

function options(extra: Partial<NotifyOptions> = {}): NotifyOptions {
  return {
    repo: 'site',
    secret: SECRET,
    concurrency: 8,
    timeoutMs: 3_000,
    retries: 2,
    wait: false,
    backoffMs: 20,
    ...extra,
  };
}

const target = (url: string): Target => ({ url, line: 1 });

test('a 2xx answer: signed request to /?repo=NAME, verified by the slave, one attempt', async () => {
  const s = await slave((_req, res) => json(res, 202, { repo: 'octo/site', state: 'queued' }));
  try {
    const [result] = await notifyTargets([target(`${s.url}/hook`)], options({ repo: 'octo/site', wait: true }));
    assert.is(result.ok, true, result.error);
    assert.is(result.status, 202);
    assert.is(result.attempts, 1);
    assert.is(result.target, `${s.url}/hook`);
    assert.type(result.ms, 'number');
    assert.is(result.error, undefined);
    assert.is(s.hits.length, 1);
    assert.is(s.hits[0].url, '/hook/?repo=octo%2Fsite&wait=1');
    assert.is(s.hits[0].verdict, 'ok', 'the slave accepts the signature');
  } finally {
    await s.close();
  }
});

test('without a secret no signature headers are sent', async () => {
  const s = await slave((_req, res) => json(res, 200, {}));
  try {
    const [result] = await notifyTargets([target(s.url)], options({ secret: undefined }));
    assert.is(result.ok, true);
    assert.is(s.hits[0].headers['x-shipkit-signature'], undefined);
    assert.is(s.hits[0].verdict, 'missing signature headers');
  } finally {
    await s.close();
  }
});

// [label, status, body, expected error]
const fourXX: Array<[number, unknown, RegExp]> = [
  [
    401,
    { error: 'bad signature' },
    /^HTTP 401 unauthorized \(is the shared secret the same on both sides\?\): bad signature$/,
  ],
  [400, { error: 'invalid repo name' }, /^HTTP 400: invalid repo name$/],
  [404, 'not json', /^HTTP 404$/],
  [409, { error: 'x'.repeat(1000) }, /^HTTP 409: x{200}$/],
];

for (const [status, body, pattern] of fourXX) {
  test(`HTTP ${status} is not retried`, async () => {
    const s = await slave((_req, res) => {
      if (typeof body !== 'string') return json(res, status, body);
      res.writeHead(status);
      res.end(body);
    });
    try {
      const [result] = await notifyTargets([target(s.url)], options({ retries: 3 }));
      assert.is(result.ok, false);
      assert.is(result.status, status);
      assert.is(result.attempts, 1);
      assert.match(result.error!, pattern);
      assert.is(s.hits.length, 1, 'one request only');
    } finally {
      await s.close();
    }
  });
}

test('a redirect is reported, not followed', async () => {
  const s = await slave((_req, res) => {
    res.writeHead(302, { Location: 'http://127.0.0.1:1/' });
    res.end();
  });
  try {
    const [result] = await notifyTargets([target(s.url)], options());
    assert.is(result.ok, false);
    assert.is(result.status, 302);
    assert.is(s.hits.length, 1);
  } finally {
    await s.close();
  }
});

test('5xx is retried: recovers after two 503s; gives up after retries+1 attempts of 500', async () => {
  const flaky = await slave((_req, res, n) =>
    n <= 2 ? json(res, 503, { error: 'busy' }) : json(res, 200, { ok: true }),
  );
  const broken = await slave((_req, res) => json(res, 500, { ok: false, error: 'clone failed' }));
  try {
    const [a, b] = await notifyTargets([target(flaky.url), target(broken.url)], options({ retries: 3 }));
    assert.equal({ ok: a.ok, status: a.status, attempts: a.attempts }, { ok: true, status: 200, attempts: 3 });
    assert.is(flaky.hits.length, 3);
    assert.ok(
      flaky.hits.every((h) => h.verdict === 'ok'),
      'each retry carries a fresh signature (no replayed nonce)',
    );
    assert.equal(
      { ok: b.ok, status: b.status, attempts: b.attempts, error: b.error },
      { ok: false, status: 500, attempts: 4, error: 'HTTP 500: clone failed' },
    );
    assert.is(broken.hits.length, 4);
  } finally {
    await flaky.close();
    await broken.close();
  }
});

test('retries: 0 means one attempt', async () => {
  const s = await slave((_req, res) => json(res, 500, {}));
  try {
    const [result] = await notifyTargets([target(s.url)], options({ retries: 0 }));
    assert.is(result.attempts, 1);
    assert.is(s.hits.length, 1);
  } finally {
    await s.close();
  }
});

test('connection refused is retried, then reported', async () => {
  const port = await closedPort();
  const [result] = await notifyTargets([target(`http://127.0.0.1:${port}`)], options({ retries: 2 }));
  assert.equal(
    { ok: result.ok, status: result.status, attempts: result.attempts, error: result.error },
    { ok: false, status: null, attempts: 3, error: 'connection refused' },
  );
});

test('a slave that accepts and closes at once (connection reset) is retried', async () => {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as net.AddressInfo;
    const [result] = await notifyTargets([target(`http://127.0.0.1:${port}`)], options({ retries: 2 }));
    assert.is(result.ok, false);
    assert.is(result.attempts, 3);
    assert.is(connections, 3);
    assert.match(result.error!, /^connection error \(/);
  } finally {
    server.close();
  }
});

test('a slave that never answers times out once: not retried', async () => {
  const s = await slave(() => {
    /* never answers */
  });
  try {
    const started = Date.now();
    const [result] = await notifyTargets([target(s.url)], options({ timeoutMs: 500, retries: 3 }));
    const ms = Date.now() - started;
    assert.equal(
      { ok: result.ok, status: result.status, attempts: result.attempts, error: result.error },
      { ok: false, status: null, attempts: 1, error: 'no answer within 0.5s' },
    );
    assert.is(s.hits.length, 1, 'a timeout is not retried');
    assert.ok(ms >= 450 && ms < 10_000, `took ${ms} ms`);
  } finally {
    await s.close();
  }
});

test('a slave that sends headers and then stalls the body also times out', async () => {
  const s = await slave((_req, res) => {
    res.writeHead(200, { 'Content-Length': '100' });
    res.write('{"ok":');
  });
  try {
    const [result] = await notifyTargets([target(s.url)], options({ timeoutMs: 500, retries: 3 }));
    assert.is(result.ok, false);
    assert.is(result.attempts, 1);
    assert.match(result.error!, /no answer within 0\.5s/);
  } finally {
    await s.close();
  }
});

test('a slave answering garbage is reported as such, not retried', async () => {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as net.AddressInfo;
    const [result] = await notifyTargets([target(`http://127.0.0.1:${port}`)], options({ retries: 2 }));
    assert.is(result.ok, false);
    assert.is(result.status, null);
    assert.match(result.error!, /invalid HTTP response/);
    assert.is(result.attempts, 1);
    assert.is(connections, 1);
  } finally {
    server.close();
  }
});

test('a huge answer body does not hang or blow up memory (read capped)', async () => {
  const s = await slave((_req, res) => {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const pump = () => {
      while (sent < 50 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  try {
    const [result] = await notifyTargets([target(s.url)], options({ retries: 0, timeoutMs: 10_000 }));
    assert.is(result.ok, false);
    assert.is(result.status, 500);
    assert.is(result.error, 'HTTP 500');
  } finally {
    await s.close();
  }
});

test('concurrency bound: never more requests in flight than --concurrency, and it is reached', async () => {
  const s = await slave(async (_req, res) => {
    await sleep(250);
    json(res, 202, {});
  });
  try {
    const targets = Array.from({ length: 20 }, (_, i) => target(`${s.url}/slave${i}`));
    const completed: TargetResult[] = [];
    const results = await notifyTargets(targets, options({ concurrency: 4, onResult: (r) => completed.push(r) }));
    assert.is(s.hits.length, 20);
    assert.is(s.maxInFlight(), 4, `max in flight ${s.maxInFlight()}`);
    assert.ok(results.every((r) => r.ok));
    assert.equal(
      results.map((r) => r.target),
      targets.map((t) => t.url),
      'results in target order',
    );
    assert.is(completed.length, 20, 'onResult once per target');
    assert.equal(new Set(s.hits.map((h) => h.url)).size, 20);
  } finally {
    await s.close();
  }
});

test('concurrency above the number of targets: all at once', async () => {
  const s = await slave(async (_req, res) => {
    await sleep(300);
    json(res, 200, {});
  });
  try {
    const targets = Array.from({ length: 6 }, (_, i) => target(`${s.url}/s${i}`));
    await notifyTargets(targets, options({ concurrency: 32 }));
    assert.is(s.maxInFlight(), 6);
  } finally {
    await s.close();
  }
});

test('a duplicated slave in the list gets one request', async () => {
  const s = await slave((_req, res) => json(res, 202, {}));
  try {
    const { port } = new URL(s.url);
    const list = `${s.url}\n127.0.0.1:${port}\n${s.url}/\nHTTP://127.0.0.1:${port}\n${s.url}/other\n`;
    const results = await notifyTargets(parseSlaveList(list), options());
    assert.is(results.length, 2);
    assert.is(s.hits.length, 2);
    assert.equal(s.hits.map((h) => h.url).sort(), ['/?repo=site', '/other/?repo=site']);
  } finally {
    await s.close();
  }
});

test('one bad slave does not stop the others', async () => {
  const good = await slave((_req, res) => json(res, 202, {}));
  const bad = await slave((_req, res) => json(res, 500, { error: 'nope' }));
  const refused = `http://127.0.0.1:${await closedPort()}`;
  try {
    const results = await notifyTargets(
      [target(refused), target(bad.url), target(good.url)],
      options({ retries: 1, concurrency: 1 }),
    );
    assert.equal(
      results.map((r) => r.ok),
      [false, false, true],
    );
    assert.equal(
      results.map((r) => r.error ?? null),
      ['connection refused', 'HTTP 500: nope', null],
    );
  } finally {
    await good.close();
    await bad.close();
  }
});

test.run();
