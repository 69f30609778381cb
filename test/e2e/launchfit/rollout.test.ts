// Pull rollout on the host (docs/design.md) against the real `launchfit` and a loopback
// update server: a VERSION with ROLLOUT 0, 101 or abc (signed) is refused with the current
// release serving and nothing downloaded; a host whose bucket is not below ROLLOUT keeps its
// release, downloads nothing, says it is waiting, and does not record the SEQ, so the next
// VERSION (higher SEQ, ROLLOUT raised above its bucket) brings it in.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSigningKey, signDetached } from '../../../lib/release/format/signature.ts';
import { rolloutBucket } from '../../../lib/release/format/bucket.ts';
import { createRequestVerifier, sha256Hex } from '../../../lib/http/signing.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runScript, waitFor } from '../../_helpers/common.ts';
import {
  askApp,
  appYml,
  currentOf,
  makeWorld,
  startLaunchfit,
  statusOf,
  type World,
  recordInLedger,
} from '../../fixtures/launchfit/world.ts';

/** Rewrite the published VERSION with these ROLLOUT and SEQ lines and sign it with the world's key. */
async function resign(w: World, rollout: string, seq: number): Promise<void> {
  const file = path.join(w.updates, 'VERSION');
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l && !/^(ROLLOUT|SEQ) /.test(l));
  const text = `${[...lines, `SEQ ${seq}`, `ROLLOUT ${rollout}`].join('\n')}\n`;
  const key = await loadSigningKey(w.secretKey, w.passFile);
  writeFileSync(path.join(w.updates, 'VERSION.sig'), await signDetached(key, { data: Buffer.from(text) }));
  writeFileSync(file, text);
  await recordInLedger(w, text);
}

/** The sha256 of the release tarball of `version` at the world's update folder, as a host verifies it. */
const tarballSha = (w: World, version: string) =>
  sha256Hex(readFileSync(path.join(w.updates, `my-app-gnu-linux-${version}.tar.gz`)));
const seqOf = (w: World) => Number(/^SEQ (\d+)$/m.exec(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'))![1]);
const tarballRequests = (w: World) => w.server.requests.filter((r) => r.path.endsWith('.tar.gz')).length;

/** A host id whose bucket for `version` lies in [20, 80), written where launchfit keeps it. */
function plantHostId(deploy: string, version: string): { id: string; bucket: number } {
  for (;;) {
    const id = randomBytes(16).toString('hex');
    const bucket = rolloutBucket(id, version);
    if (bucket >= 20 && bucket < 80) {
      mkdirSync(path.join(deploy, '.launchfit'), { recursive: true });
      writeFileSync(path.join(deploy, '.launchfit', 'host-id'), `${id}\n`, { mode: 0o600 });
      return { id, bucket };
    }
  }
}

test('ROLLOUT: refused when invalid, waiting when out of the bucket, taken once raised', async () => {
  const w = await makeWorld();
  try {
    await w.publish('1.0');
    w.writeConfig();
    const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    const { id, bucket } = plantHostId(w.deploy, '1.1');
    await w.publish('1.1');
    const seq = seqOf(w);

    for (const bad of ['0', '101', 'abc', '-5', '10.123']) {
      await resign(w, bad, seq);
      const before = tarballRequests(w);
      const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
      assert.is(r.exitCode, 1, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /ROLLOUT/, bad);
      assert.is(tarballRequests(w), before, `${bad}: nothing downloaded`);
      assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0', bad);
      const s = await statusOf(w.deploy);
      assert.is(s.lastCheck.ok, false, bad);
      assert.match(s.lastCheck.message, /ROLLOUT/, bad);
    }

    // Out of the bucket: keeps 1.0, downloads nothing, says why; polled again it stays so.
    const low = Math.floor(bucket);
    await resign(w, String(low), seq);
    const before = tarballRequests(w);
    for (let i = 0; i < 2; i++) {
      const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
      assert.is(r.exitCode, 0, r.stderr);
      assert.is(tarballRequests(w), before, 'nothing downloaded while waiting');
      assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
    }
    const waiting = await statusOf(w.deploy);
    assert.is(waiting.hostId, id);
    assert.is(waiting.waiting.rollout, low);
    assert.is(waiting.waiting.version, '1.1');
    assert.ok(Math.abs(waiting.waiting.bucket - bucket) < 0.001, `${waiting.waiting.bucket} vs ${bucket}`);
    assert.match(
      waiting.lastCheck.message,
      /waiting: this host's bucket [\d.]+ is not below ROLLOUT \d+|still waiting/,
    );
    const text = (await runScript('launchfit', ['status', '--dir', w.deploy])).stdout;
    assert.match(text, new RegExp(`host id:  ${id}`));
    assert.match(
      text,
      new RegExp(`rollout:  waiting: this host's bucket [\\d.]+ is not below ROLLOUT ${low} for 1\\.1`),
    );
    assert.is.not(waiting.seq, seq, 'the SEQ of a VERSION not acted on is not recorded');

    // Raised above the bucket (a new VERSION, higher SEQ): the host takes 1.1.
    await resign(w, String(Math.min(100, low + 1)), seq + 1);
    const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
    const done = await statusOf(w.deploy);
    assert.is(done.seq, seq + 1);
    assert.is(done.waiting, undefined);
  } finally {
    await w.server.close();
  }
});

test('update server down: the app keeps serving, checks back off and recover', async () => {
  const w = await makeWorld();
  let lf;
  try {
    await w.publish('1.0', { yml: appYml('  forever: true\n  stable_after: 1\n') });
    w.writeConfig();
    const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    lf = await startLaunchfit(w.deploy, { LAUNCHFIT_INTERVAL_MS: '300' });
    // Down: every connection is cut before an answer.
    w.server.overrides.set('VERSION', (_req, res) => {
      res.socket?.destroy();
      return true;
    });
    await waitFor(() => /failed 4 time\(s\) in a row/.test(lf!.output()), {
      timeoutMs: 60_000,
      what: `four failed checks:\n${lf.output()}`,
    });
    const delays = [
      ...lf
        .output()
        .matchAll(/failed (\d+) time\(s\) in a row; the current release keeps serving; next check in ([\d.]+) s/g),
    ].map((m) => [Number(m[1]), Number(m[2])]);
    assert.equal(
      delays.slice(0, 4).map(([n]) => n),
      [1, 2, 3, 4],
      'counted in a row',
    );
    // Bounds only (no timing asserted): 2^n intervals with jitter over the upper half, capped at 8.
    for (const [n, s] of delays)
      assert.ok(
        s >= (0.3 * Math.min(2 ** n, 8)) / 2 - 0.1 && s <= 0.3 * Math.min(2 ** n, 8) + 0.1,
        `failure ${n}: ${s} s`,
      );
    assert.is(await askApp(w.appPort), '1.0', 'the current release keeps serving');
    // Back: the next check works, the count is reset, and a new release is taken.
    w.server.overrides.delete('VERSION');
    await w.publish('1.1', { yml: appYml('  forever: true\n  stable_after: 1\n') });
    await waitFor(async () => (await askApp(w.appPort)) === '1.1', {
      timeoutMs: 60_000,
      what: `1.1 taken after the server came back:\n${lf.output()}`,
    });
    const after = lf.output().slice(lf.output().lastIndexOf('in a row'));
    assert.not.match(
      after.slice(after.indexOf('\n')),
      /failed \d+ time\(s\) in a row/,
      'no failure counted after the server came back',
    );
  } finally {
    await lf?.stop();
    await w.server.close();
  }
});

test('reports: signed POSTs at start (running) and after an update (updated, previous), verified with the secret', async () => {
  const w = await makeWorld();
  const verifier = createRequestVerifier('fleet secret');
  const got: Array<{ verdict: { ok: boolean }; body: Record<string, unknown> }> = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const verdict = verifier.verify('POST', req.url ?? '', req.headers, { bodySha256: sha256Hex(body) });
      got.push({ verdict, body: JSON.parse(body) });
      res.writeHead(verdict.ok ? 202 : 401, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  let lf;
  try {
    await w.publish('1.0', { yml: appYml('  forever: true\n  stable_after: 1\n') });
    const secretFile = path.join(w.base, 'report.secret');
    writeFileSync(secretFile, 'fleet secret\n', { mode: 0o600 });
    w.writeConfig(
      `  report: http://127.0.0.1:${(receiver.address() as AddressInfo).port}/fleet/reports\n  report_secret: file:${secretFile}\n`,
    );
    const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
    assert.is(deployed.exitCode, 0, deployed.stderr);
    lf = await startLaunchfit(w.deploy);
    await waitFor(() => got.length >= 1, { timeoutMs: 30_000, what: `the running report:\n${lf!.output()}` });
    const host = readFileSync(path.join(w.deploy, '.launchfit', 'host-id'), 'utf8').trim();
    assert.is(got[0].verdict.ok, true);
    assert.equal(
      { ...got[0].body, seconds: 0 },
      {
        app: 'my-app',
        host,
        version: '1.0',
        previous: '',
        seq: seqOf(w),
        sha256: tarballSha(w, '1.0'),
        bucket: rolloutBucket(host, '1.0'),
        result: 'running',
        reason: '',
        seconds: 0,
        way: '',
        bytes: 0,
      },
    );

    await w.publish('1.1', { yml: appYml('  forever: true\n  stable_after: 1\n') });
    const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
    assert.is(r.exitCode, 0, r.stderr);
    await waitFor(() => got.length >= 2, { timeoutMs: 30_000, what: `the updated report:\n${lf!.output()}` });
    assert.is(got[1].verdict.ok, true);
    assert.equal(
      {
        app: got[1].body.app,
        host: got[1].body.host,
        version: got[1].body.version,
        previous: got[1].body.previous,
        seq: got[1].body.seq,
        sha256: got[1].body.sha256,
        result: got[1].body.result,
        way: got[1].body.way,
      },
      {
        app: 'my-app',
        host,
        version: '1.1',
        previous: '1.0',
        seq: seqOf(w),
        sha256: tarballSha(w, '1.1'),
        result: 'updated',
        way: 'patch', // 1.1 rebuilt from 1.0 (docs/launchfit.md "Delta updates")
      },
    );
    assert.ok(typeof got[1].body.seconds === 'number' && (got[1].body.seconds as number) > 0);
    assert.ok((got[1].body.bytes as number) > 0, 'the bytes the patch took');
    await waitFor(async () => (await statusOf(w.deploy)).lastReport?.version === '1.1', {
      timeoutMs: 10_000,
      what: 'the report recorded',
    });
    const s = await statusOf(w.deploy);
    assert.equal({ ok: s.lastReport.ok, result: s.lastReport.result }, { ok: true, result: 'updated' });
    assert.equal(s.bucket, { version: '1.1', bucket: Math.floor(rolloutBucket(host, '1.1') * 10000) / 10000 });
    assert.is(got.length, 2, 'nothing else sent');
  } finally {
    await lf?.stop();
    await new Promise((r) => receiver.close(r));
    await w.server.close();
  }
});

test.run();
