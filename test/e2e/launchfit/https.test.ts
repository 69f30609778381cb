// launchfit against an https update server on loopback (a self-signed certificate made by
// openssl, trusted by the launchfit child through NODE_EXTRA_CA_CERTS, so Node only): a deploy
// over https works, and a redirect from it to plain http is refused before the http server is
// asked, with nothing installed.
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runScript } from '../../_helpers/common.ts';
import { startUpdateServer } from '../../fixtures/launchfit/update-server.ts';
import { currentOf, makeWorld } from '../../fixtures/launchfit/world.ts';

async function makeCert(dir: string): Promise<{ key: string; cert: string; certFile: string }> {
  const keyFile = path.join(dir, 'tls.key');
  const certFile = path.join(dir, 'tls.crt');
  const r = await runCommand('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

test('deploy over https works; a redirect from https to http is refused and nothing is installed', async () => {
  const w = await makeWorld();
  const tls = await makeCert(w.base);
  const secure = await startUpdateServer(w.updates, { tls });
  const env = { NODE_EXTRA_CA_CERTS: tls.certFile };
  try {
    await w.publish('1.0');
    // The positive control: the certificate is trusted, so a refusal below is not a TLS error.
    const ok = await runScript('launchfit', [secure.url, '--dir', w.deploy, '--keyfile', w.pubAsc], { env });
    assert.is(ok.exitCode, 0, ok.stderr);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');

    const second = path.join(w.base, 'deploy-2');
    mkdirSync(second);
    secure.overrides.set('VERSION', (_req, res) => {
      res.writeHead(302, { Location: `${w.server.url}VERSION` }).end();
      return true;
    });
    const before = w.server.requests.length;
    const refused = await runScript('launchfit', [secure.url, '--dir', second, '--keyfile', w.pubAsc], { env });
    assert.is(refused.exitCode, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /Fetching https:\/\/127\.0\.0\.1:\d+\/VERSION failed: redirected from https to plain http \(http:\/\/127\.0\.0\.1:\d+\); refusing the downgrade/,
    );
    assert.equal(w.server.requests.slice(before), [], 'the plain http server was never asked');
    assert.is(currentOf(second), undefined);
    assert.equal(
      readdirSync(second).filter((n) => n !== '.launchfit'),
      [],
      'nothing installed, launchify.yml taken back',
    );
  } finally {
    await secure.close();
    await w.server.close();
  }
});

test.run();
