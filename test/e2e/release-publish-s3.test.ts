// release publish to s3:// (through the upload library) against s3rver on loopback, then
// launchfit deploys straight from the bucket over HTTP: the whole pipeline without a web server.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../lib/core/log.ts';
import { publishRelease } from '../../lib/release/publish.ts';
import { runScript, tmpDir } from '../helpers.ts';
import { exportPublic, makePublisher } from '../fixtures/launchfit/gpg.ts';
import { startS3rver } from '../fixtures/s3rver.ts';
import { APP_SOURCE, currentOf } from '../fixtures/launchfit/world.ts';
import { copyFileSync } from 'node:fs';


const awsEnv: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

test('publish to s3://, deploy from the bucket', async () => {
  const s3rver = await startS3rver('releases');
  const { endpoint } = s3rver;
  const saved = { ...process.env };
  Object.assign(process.env, awsEnv, { AWS_ENDPOINT_URL_S3: endpoint });
  delete process.env.AWS_PROFILE;
  try {
    const base = tmpDir();
    const { g, key, secret } = await makePublisher(base, 'pw');
    const pub = await exportPublic(g, key.fpr, path.join(base, 'pub.asc'));
    const src = path.join(base, 'app');
    mkdirSync(src);
    copyFileSync(APP_SOURCE, path.join(src, 'server.cjs'));
    writeFileSync(path.join(src, 'version.txt'), '3.0\n');
    const r = await publishRelease({ dir: src, name: 'my-app', platform: 'gnu-linux', version: '3.0', key: secret, passphraseFile: path.join(base, 'pass'), to: 's3://releases/app-updates', log: silentLogger });
    assert.is(r.file, 'my-app-gnu-linux-3.0.tar.gz');
    for (const name of ['VERSION', 'VERSION.sig', r.file, `${r.file}.sig`, 'pubkey.asc', 'keys.asc']) {
      const res = await fetch(`${endpoint}/releases/app-updates/${name}`);
      assert.is(res.status, 200, name);
      await res.arrayBuffer();
    }
    const deploy = path.join(base, 'deploy');
    mkdirSync(deploy);
    const d = await runScript('launchfit', ['deploy', `${endpoint}/releases/app-updates/`, '--dir', deploy, '--keyfile', pub]);
    assert.is(d.exitCode, 0, d.stderr);
    assert.is(currentOf(deploy), 'releases/my-app-gnu-linux-3.0');
  } finally {
    process.env = saved;
    await s3rver.close();
  }
});

test.run();
