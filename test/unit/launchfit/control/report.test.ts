// Reports (lib/launchfit/control/report.ts): the body of the contract (bucket computed from host and
// version, reason cut to 500 characters, never over 4096 bytes); which check outcomes are sent and
// as what; the Reporter signs with the body line, tries 3 times, stops on a refusal, records the
// outcome, and sends nothing without updates.report. A real HTTP receiver on loopback.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, RemoteError, VerificationError, WorkError } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { createRequestVerifier, sha256Hex } from '../../../../lib/http/signing.ts';
import { parseLaunchConfigText, type LaunchConfig } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { Reporter, readLastReport, reportOfCheck } from '../../../../lib/launchfit/control/report.ts';
import { reportBody } from '../../../../lib/release/format/fleet-report.ts';
import { deployPaths } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { rolloutBucket } from '../../../../lib/release/format/bucket.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const HOST = '0123456789abcdef0123456789abcdef';

test('reportBody: the contract keys, the computed bucket, the reason capped', () => {
  const body = JSON.parse(
    reportBody({
      app: 'my-app',
      host: HOST,
      version: '1.2.0',
      previous: '1.1.0',
      seq: 42,
      result: 'updated',
      seconds: 3.21,
    }),
  );
  assert.equal(Object.keys(body), [
    'app',
    'host',
    'version',
    'previous',
    'seq',
    'sha256',
    'bucket',
    'result',
    'reason',
    'seconds',
    'way',
    'bytes',
  ]);
  assert.is(body.bucket, rolloutBucket(HOST, '1.2.0'));
  assert.ok(body.bucket >= 0 && body.bucket < 100);
  assert.is(body.seconds, 3.2);
  assert.is(body.reason, '');
  assert.is(
    JSON.parse(reportBody({ app: 'a', host: HOST, version: '1', result: 'failed', reason: 'x'.repeat(9000) })).reason
      .length,
    500,
  );
  const wide = reportBody({
    app: 'a',
    host: HOST,
    version: '1',
    result: 'failed',
    reason: '\u{1F600}\u0000"'.repeat(400),
  });
  assert.ok(Buffer.byteLength(wide) <= 4096, `${Buffer.byteLength(wide)} bytes`);
});

test('reportOfCheck: what is reported, and as what', () => {
  assert.equal(reportOfCheck({ action: 'installed', message: '' }, undefined), { result: 'updated', reason: '' });
  assert.is(reportOfCheck({ action: 'unhealthy', message: 'no answer' }, undefined)!.result, 'rolled_back');
  assert.is(reportOfCheck({ action: 'skipped-bad', message: 'bad' }, undefined)!.result, 'skipped');
  for (const action of ['not-modified', 'up-to-date', 'waiting'] as const)
    assert.is(reportOfCheck({ action, message: '' }, undefined), undefined, action);
  assert.is(
    reportOfCheck(undefined, new RemoteError('down')),
    undefined,
    'a server that is down is not a release outcome',
  );
  assert.equal(reportOfCheck(undefined, new VerificationError('bad sig')), { result: 'skipped', reason: 'bad sig' });
  assert.is(reportOfCheck(undefined, new ConfigError('x'))!.result, 'skipped');
  assert.equal(reportOfCheck(undefined, new WorkError('hook failed')), { result: 'failed', reason: 'hook failed' });
});

async function receiver(answer: (n: number) => number | [number, string]) {
  const got: Array<{ req: IncomingMessage; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      got.push({ req, body });
      const [status, text] = [answer(got.length)].flat() as [number, string?];
      res.writeHead(status).end(text ?? '{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    got,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fleet/reports?x=1`,
    close: () => new Promise((r) => server.close(r)),
  };
}

function configFor(dir: string, url?: string): LaunchConfig {
  return {
    file: path.join(dir, 'launchify.yml'),
    updates: { report: url ? { url, secret: 'env:REPORT_TEST_SECRET' } : undefined },
  } as unknown as LaunchConfig;
}

test('Reporter: signed with the body line; retried on 503, given up after 3; a 401 is not retried; recorded', async () => {
  process.env.REPORT_TEST_SECRET = 's3cret';
  const dir = tmpDir('report-');
  const paths = deployPaths(dir);
  const codes = [503, 202, 503, 503, 503, 401];
  const r = await receiver((n) => codes[n - 1] ?? 500);
  try {
    const reporter = new Reporter({ paths, log: silentLogger, retryMs: 10 });
    reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version: '1.2', result: 'updated' });
    await reporter.idle();
    assert.is(r.got.length, 2, 'one retry after the 503');
    const verifier = createRequestVerifier('s3cret');
    for (const { req, body } of r.got.slice(0, 2)) {
      assert.is(req.method, 'POST');
      assert.is(req.headers['content-type'], 'application/json');
      assert.equal(verifier.verify('POST', '/fleet/reports?x=1', req.headers, { bodySha256: sha256Hex(body) }), {
        ok: true,
        secret: 0,
      });
    }
    assert.equal(
      createRequestVerifier('s3cret').verify('POST', '/fleet/reports?x=1', r.got[1].req.headers, {
        bodySha256: sha256Hex(`${r.got[1].body} `),
      }).ok,
      false,
      'the body is signed',
    );
    assert.equal((await readLastReport(paths))!.ok, true);

    reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version: '1.3', result: 'failed', reason: 'x' });
    await reporter.idle();
    assert.is(r.got.length, 5, 'three tries');
    const last = (await readLastReport(paths))!;
    assert.is(last.ok, false);
    assert.match(last.message, /answered 503/);
    reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version: '1.3', result: 'failed', reason: 'x' });
    await reporter.idle();
    assert.is(r.got.length, 5, 'the same outcome twice in a row is sent once');

    reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version: '1.4', result: 'updated' });
    await reporter.idle();
    assert.is(r.got.length, 6, 'a 401 is not tried again');
    assert.match((await readLastReport(paths))!.message, /answered 401/);

    reporter.send(configFor(dir), { app: 'my-app', host: HOST, version: '1.5', result: 'updated' });
    await reporter.idle();
    assert.is(r.got.length, 6, 'nothing without updates.report');
  } finally {
    await r.close();
  }
});

test('Reporter: keeps the credential hook-server hands out, signs with it, and enrols again when it is refused', async () => {
  process.env.REPORT_TEST_SECRET = 's3cret';
  const dir = tmpDir('report-');
  const paths = deployPaths(dir);
  const credential = 'c'.repeat(64);
  const answers: Array<number | [number, string]> = [
    [202, JSON.stringify({ ok: true, credential })],
    202,
    401,
    [202, JSON.stringify({ ok: true, credential: 'd'.repeat(64) })],
  ];
  const r = await receiver((n) => answers[n - 1] ?? 500);
  try {
    const reporter = new Reporter({ paths, log: silentLogger, retryMs: 10 });
    const send = async (version: string) => {
      reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version, result: 'updated' });
      await reporter.idle();
    };
    const signedWith = (n: number, key: string) =>
      createRequestVerifier(key).verify('POST', '/fleet/reports?x=1', r.got[n].req.headers, {
        bodySha256: sha256Hex(r.got[n].body),
      }).ok;
    await send('1.0');
    assert.ok(signedWith(0, 's3cret'), 'the first report enrols with the app secret');
    assert.is(readFileSync(path.join(paths.meta, 'report-key'), 'utf8').trim(), credential);
    assert.is(statSync(path.join(paths.meta, 'report-key')).mode & 0o777, 0o600);
    await send('1.1');
    assert.ok(signedWith(1, credential), 'then it signs with its own credential');
    assert.not.ok(signedWith(1, 's3cret'));
    await send('1.2');
    assert.is(r.got.length, 4, 'refused credential: one more try, with the app secret');
    assert.ok(signedWith(2, credential));
    assert.ok(signedWith(3, 's3cret'));
    assert.is(readFileSync(path.join(paths.meta, 'report-key'), 'utf8').trim(), 'd'.repeat(64), 'the new one kept');
    assert.is((await readLastReport(paths))!.ok, true);
  } finally {
    await r.close();
  }
});

test('Reporter: a version just rolled back is not reported again as skipped (marked bad) at the next poll', async () => {
  process.env.REPORT_TEST_SECRET = 's3cret';
  const dir = tmpDir('report-');
  const r = await receiver(() => 202);
  try {
    const reporter = new Reporter({ paths: deployPaths(dir), log: silentLogger, retryMs: 10 });
    const send = async (result: 'rolled_back' | 'skipped' | 'failed', version: string) => {
      reporter.send(configFor(dir, r.url), { app: 'my-app', host: HOST, version, result, reason: result });
      await reporter.idle();
    };
    await send('rolled_back', '1.2');
    await send('skipped', '1.2');
    await send('skipped', '1.2');
    assert.equal(
      r.got.map((g) => JSON.parse(g.body).result),
      ['rolled_back'],
      'the rolled_back report, with its reason, is the one hook-server keeps',
    );
    await send('skipped', '1.1'); // the publisher sent hosts back to 1.1, which this host marked bad earlier
    assert.equal(
      r.got.map((g) => [JSON.parse(g.body).result, JSON.parse(g.body).version]),
      [
        ['rolled_back', '1.2'],
        ['skipped', '1.1'],
      ],
      'another version skipped is news: the publisher sees which hosts skipped its rollback',
    );
  } finally {
    await r.close();
  }
});

test('launchify.yml: updates.report and updates.report_secret, both or neither; refusals name the key and line', () => {
  const ok = parseLaunchConfigText(
    'updates:\n  report: http://ci.example.com/fleet/reports\n  report_secret: file:/etc/launchfit/report.secret\n',
    '/d/launchify.yml',
  );
  assert.equal(ok.updates.report, {
    url: 'http://ci.example.com/fleet/reports',
    secret: 'file:/etc/launchfit/report.secret',
  });
  assert.is(parseLaunchConfigText('updates:\n  server: http://u/\n', '/d/launchify.yml').updates.report, undefined);
  const cases: Array<[string, RegExp]> = [
    [
      'updates:\n  report: http://ci/fleet/reports\n',
      /updates\.report_secret.*line 2.*is required|line 2.*updates\.report_secret|report_secret.*required/,
    ],
    ['updates:\n  report_secret: env:X\n', /report_secret.*is set but updates\.report is not/],
    ['updates:\n  report: ftp://ci/fleet\n  report_secret: env:X\n', /updates\.report.*must be an http/],
    ['updates:\n  report: http://u:p@ci/fleet\n  report_secret: env:X\n', /without credentials/],
    ['updates:\n  report: not a url\n  report_secret: env:X\n', /must be an http/],
    ['updates:\n  report: http://ci/fleet\n  report_secret: hunter2\n', /must be file:PATH or env:NAME/],
  ];
  for (const [text, pattern] of cases)
    assert.throws(() => parseLaunchConfigText(text, '/d/launchify.yml'), pattern, text);
  try {
    parseLaunchConfigText('updates:\n  report: http://ci/fleet\n  report_secret: hunter2\n', '/d/launchify.yml');
  } catch (error) {
    assert.not.match(String((error as Error).message), /hunter2/, 'the secret is not echoed');
    assert.match(String((error as Error).message), /launchify\.yml/);
  }
});

test.run();
