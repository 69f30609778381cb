// server-update --canary/--waves/--max-failures (docs/design.md): a staged rollout against real HTTP
// hosts on 127.0.0.1 that check each request's signature independently and answer a verdict
// (200 updated, 500 rolled back, or never), as launchfit and slave hosts do with &wait=1.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, runScript, scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = 'rollout-secret-0123456789';

type Verdict = 'ok' | 'fail' | 'hang';
interface Host {
  url: string;
  hits: Array<{ at: number; path: string }>;
  verdict: Verdict;
  close: () => void;
}

function signatureOk(req: http.IncomingMessage): boolean {
  const ts = String(req.headers['x-shipkit-timestamp']);
  const nonce = String(req.headers['x-shipkit-nonce']);
  const expected = `sha256=${createHmac('sha256', SECRET).update(`GET\n${req.url}\n${ts}\n${nonce}`).digest('hex')}`;
  return req.headers['x-shipkit-signature'] === expected;
}

async function startHost(verdict: Verdict = 'ok', delayMs = 30): Promise<Host> {
  const host: Host = { url: '', hits: [], verdict, close: () => {} };
  const server = http.createServer((req, res) => {
    host.hits.push({ at: Date.now(), path: req.url ?? '' });
    if (!signatureOk(req)) return void res.writeHead(401).end('{"error":"unauthorized"}');
    if (host.verdict === 'hang') return; // never answers
    setTimeout(() => {
      if (host.verdict === 'ok')
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true,"state":"updated"}');
      else
        res
          .writeHead(500, { 'Content-Type': 'application/json' })
          .end('{"ok":false,"error":"rolled back: health check failed"}');
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  host.close = () => server.close();
  return host;
}

async function fleet(verdicts: Verdict[]): Promise<{ hosts: Host[]; list: string; close: () => void }> {
  const hosts = await Promise.all(verdicts.map((v) => startHost(v)));
  const list = path.join(tmpDir(), 'slaves.txt');
  writeFileSync(list, hosts.map((h) => h.url).join('\n') + '\n');
  return { hosts, list, close: () => hosts.forEach((h) => h.close()) };
}

const update = (list: string, ...args: string[]) =>
  runScript('server-update', ['app', '--list', list, ...args], { env: { SHIPKIT_SECRET: SECRET } });

test('canary, then waves: each wave starts after the one before has answered; all updated → exit 0', async () => {
  const f = await fleet(Array(10).fill('ok'));
  try {
    const r = await update(f.list, '--canary', '1', '--waves', '50%,100%', '--json');
    assert.is(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      waves: Array<{ name: string; failed: number; results: Array<{ target: string; ok: boolean }> }>;
      notContacted: string[];
      interrupted: boolean;
    };
    assert.equal(
      report.waves.map((w) => [w.name, w.results.map((x) => x.target)]),
      [
        ['canary', [f.hosts[0].url]],
        ['wave 1 (50%)', f.hosts.slice(1, 6).map((h) => h.url)], // round(9 × 50%) = 5
        ['wave 2 (100%)', f.hosts.slice(6).map((h) => h.url)],
      ],
    );
    assert.equal(report.notContacted, []);
    assert.is(report.interrupted, false);
    for (const h of f.hosts)
      assert.equal(
        h.hits.map((x) => x.path),
        ['/?repo=app&wait=1'],
        'one request each, waiting for the verdict',
      );
    const firstOf = (hosts: Host[]) => Math.min(...hosts.map((h) => h.hits[0].at));
    const lastOf = (hosts: Host[]) => Math.max(...hosts.map((h) => h.hits[0].at));
    assert.ok(
      firstOf(f.hosts.slice(1, 6)) >= lastOf(f.hosts.slice(0, 1)) + 25,
      'wave 1 starts after the canary answered',
    );
    assert.ok(firstOf(f.hosts.slice(6)) >= lastOf(f.hosts.slice(1, 6)) + 25, 'wave 2 starts after wave 1 answered');
  } finally {
    f.close();
  }
});

test('a canary that rolls itself back halts the rollout: nobody else is contacted, exit 1, the report names it', async () => {
  const f = await fleet(['fail', ...Array(5).fill('ok')]);
  try {
    const r = await update(f.list, '--canary', '1', '--waves', '25%,100%');
    assert.is(r.exitCode, 1);
    assert.match(r.stdout, /FAIL {2}http:\/\/127\.0\.0\.1:\d+ {2}HTTP 500: rolled back: health check failed/);
    assert.match(
      r.stdout,
      new RegExp(
        `The rollout halted at canary: 1 host\\(s\\) failed \\(at most 0 allowed\\): ${f.hosts[0].url}; 5 host\\(s\\) of later waves were not contacted: ${f.hosts
          .slice(1)
          .map((h) => h.url)
          .join(' ')}\\.`,
      ),
    );
    for (const h of f.hosts.slice(1)) assert.equal(h.hits, []);
    assert.is(f.hosts[0].hits.length, 1, "a host's 500 verdict is final: not asked again");
  } finally {
    f.close();
  }
});

test('more failures than --max-failures in a wave (a 500 and an unreachable host) halt it; within the allowance it goes on', async () => {
  const f = await fleet(['ok', 'fail', 'ok', 'ok', 'ok', 'ok', 'ok']);
  const dead = `http://127.0.0.1:${await freePort()}`;
  const list = path.join(tmpDir(), 'slaves.txt');
  // canary h0; wave 1 (50% of 7 → 4): h1 (500), dead, h2, h3; wave 2: h4, h5, h6
  writeFileSync(
    list,
    [f.hosts[0].url, f.hosts[1].url, dead, f.hosts[2].url, f.hosts[3].url, ...f.hosts.slice(4).map((h) => h.url)].join(
      '\n',
    ),
  );
  try {
    let r = await update(
      list,
      '--canary',
      '1',
      '--waves',
      '50%,100%',
      '--max-failures',
      '1',
      '--retries',
      '0',
      '--json',
    );
    assert.is(r.exitCode, 1);
    const report = JSON.parse(r.stdout) as { halted: { wave: string; failed: string[] }; notContacted: string[] };
    assert.is(report.halted.wave, 'wave 1 (50%)');
    assert.equal(report.halted.failed.sort(), [f.hosts[1].url, dead].sort());
    assert.equal(
      report.notContacted,
      f.hosts.slice(4).map((h) => h.url),
    );
    for (const h of f.hosts.slice(4)) assert.equal(h.hits, [], 'later waves are never contacted');
    // With room for two failures per wave the rollout reaches everyone (and still exits 1: hosts failed).
    r = await update(list, '--canary', '1', '--waves', '50%,100%', '--max-failures', '2', '--retries', '0');
    assert.is(r.exitCode, 1);
    assert.match(
      r.stdout,
      /The rollout is done: 3 wave\(s\), 6\/8 host\(s\) updated, 2 failed \(within each wave's allowance\)\./,
    );
    for (const h of f.hosts.slice(4)) assert.is(h.hits.length, 1);
  } finally {
    f.close();
  }
});

test('a canary that never answers times out and halts the rollout', async () => {
  const f = await fleet(['hang', 'ok', 'ok']);
  try {
    const r = await update(f.list, '--canary', '1', '--timeout', '1');
    assert.is(r.exitCode, 1);
    assert.match(r.stdout, /no answer within 1s/);
    assert.match(r.stdout, /The rollout halted at canary.*2 host\(s\) of later waves were not contacted/);
    assert.equal(f.hosts[1].hits, []);
  } finally {
    f.close();
  }
});

test('SIGTERM during a wave: the rollout stops, later waves are not contacted, the report says so', async () => {
  const f = await fleet(['hang', 'ok', 'ok', 'ok']);
  try {
    const [cmd, ...pre] = scriptCommand('server-update');
    const child = spawn(cmd, [...pre, 'app', '--list', f.list, '--canary', '1', '--json'], {
      env: { ...process.env, SHIPKIT_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    await waitFor(() => f.hosts[0].hits.length === 1, { what: 'the canary request' });
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.is(code, 1, stderr);
    const report = JSON.parse(stdout) as {
      interrupted: boolean;
      notContacted: string[];
      waves: Array<{ results: Array<{ error?: string }> }>;
    };
    assert.is(report.interrupted, true);
    assert.equal(
      report.notContacted,
      f.hosts.slice(1).map((h) => h.url),
    );
    assert.is(report.waves[0].results[0].error, 'interrupted');
    assert.match(stderr, /SIGTERM: stopping the rollout/);
    for (const h of f.hosts.slice(1)) assert.equal(h.hits, []);
  } finally {
    f.close();
  }
});

test('bad staging arguments exit 2 with a message and send nothing', async () => {
  const f = await fleet(Array(5).fill('ok'));
  try {
    const cases: Array<[string[], RegExp]> = [
      [['--waves', '25%,50%'], /--waves must end at 100%/],
      [['--waves', '50%,25%,100%'], /--waves must grow/],
      [['--waves', 'half,100%'], /"half" is not a share/],
      [['--waves', '0%,100%'], /"0%" is not a share/],
      [['--waves', '5%,100%'], /wave 1 \(5%\) adds no host: 5% of the 5 host\(s\) after the canary rounds to 0/],
      [['--canary', '6'], /--canary 6 is more than the 5 target\(s\)/],
      [['--canary', '-1'], /Unknown option -1|--canary/],
      [['--max-failures', 'x'], /--max-failures must be a whole number/],
    ];
    for (const [args, message] of cases) {
      const r = await update(f.list, ...args);
      assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    for (const h of f.hosts) assert.equal(h.hits, []);
    const dry = await update(f.list, '--canary', '2', '--waves', '50%,100%', '--dry-run');
    assert.is(dry.exitCode, 0);
    assert.match(dry.stdout, /^canary: \S+ \S+\nwave 1 \(50%\): \S+ \S+\nwave 2 \(100%\): \S+\n$/);
    for (const h of f.hosts) assert.equal(h.hits, []);
  } finally {
    f.close();
  }
});

test.run();
