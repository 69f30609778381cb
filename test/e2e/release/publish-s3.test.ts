// release publish to s3:// (through the upload library) against s3rver on loopback, then
// launchfit deploys straight from the bucket over HTTP, and updates with a patch from it: the
// whole pipeline without a web server; then with no patch, by Range on the tarball (the files way).
// SEQ read back from the bucket by publish, release rollback and release rollout.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { rollbackPublished } from '../../../lib/release/rollout/rollback.ts';
import { rolloutRelease } from '../../../lib/release/rollout/rollout.ts';
import { startPullFleet } from '../../fixtures/fleet-pull.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript, tmpDir } from '../../_helpers/common.ts';
import { exportPublic, makePublisher } from '../../fixtures/launchfit/gpg.ts';
import { startS3rver } from '../../fixtures/s3rver.ts';
import { APP_SOURCE, currentOf } from '../../fixtures/launchfit/world.ts';
import { copyFileSync } from 'node:fs';

const awsEnv: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/nonexistent',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
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
    // 64 KiB gzip cannot shrink, the same in every version: a patch is then worth making.
    writeFileSync(path.join(src, 'data.bin'), randomBytes(64 * 1024));
    const r = await publishRelease({
      dir: src,
      name: 'my-app',
      platform: 'gnu-linux',
      version: '3.0',
      key: secret,
      passphraseFile: path.join(base, 'pass'),
      to: 's3://releases/app-updates',
      log: silentLogger,
    });
    assert.is(r.file, 'my-app-gnu-linux-3.0.tar.gz');
    for (const name of ['VERSION', 'VERSION.sig', r.file, `${r.file}.sig`, 'pubkey.asc', 'keys.asc']) {
      const res = await fetch(`${endpoint}/releases/app-updates/${name}`);
      assert.is(res.status, 200, name);
      await res.arrayBuffer();
    }
    const deploy = path.join(base, 'deploy');
    mkdirSync(deploy);
    const d = await runScript('launchfit', [
      'deploy',
      `${endpoint}/releases/app-updates/`,
      '--dir',
      deploy,
      '--keyfile',
      pub,
    ]);
    assert.is(d.exitCode, 0, d.stderr);
    assert.is(currentOf(deploy), 'releases/my-app-gnu-linux-3.0');

    // SEQ is read back from the bucket (GET VERSION and VERSION.sig, verified): 3.1 gets SEQ 2,
    // and release rollback, listing the bucket, signs SEQ 3 naming 3.0.
    const readVersion = async () =>
      parseVersionFile(await (await fetch(`${endpoint}/releases/app-updates/VERSION`)).text());
    assert.is((await readVersion()).seq, 1);
    writeFileSync(path.join(src, 'version.txt'), '3.1\n');
    const r2 = await publishRelease({
      dir: src,
      name: 'my-app',
      platform: 'gnu-linux',
      version: '3.1',
      key: secret,
      passphraseFile: path.join(base, 'pass'),
      to: 's3://releases/app-updates',
      log: silentLogger,
    });
    assert.is(r2.seq, 2);
    assert.is((await readVersion()).seq, 2);
    // 3.1 carries a manifest and a patch from 3.0 (its tarball read back from the bucket), put
    // beside it: the host on 3.0 takes the patch from the bucket instead of the tarball.
    const v31 = await readVersion();
    assert.ok(v31.manifest, 'MANIFEST in VERSION');
    assert.equal(
      v31.patches?.map((p) => p.from),
      ['3.0'],
    );
    const u = await runScript('launchfit', ['update', '--dir', deploy]);
    assert.is(u.exitCode, 0, u.stderr);
    assert.is(currentOf(deploy), 'releases/my-app-gnu-linux-3.1');
    assert.match(u.stdout + u.stderr, /rebuilt my-app-gnu-linux-3\.1\.tar\.gz from 3\.0 .*way=patch/);
    const rb = await rollbackPublished({
      name: 'my-app',
      to: 's3://releases/app-updates',
      key: secret,
      passphraseFile: path.join(base, 'pass'),
      log: silentLogger,
    });
    assert.equal([rb.from, rb.version, rb.seq], ['3.1', '3.0', 3]);
    const back = await readVersion();
    assert.equal([back.version, back.seq], ['3.0', 3]);

    // release rollout against the bucket: 3.2 published at ROLLOUT 1 (SEQ 4), raised to 100 (SEQ 5)
    // with VERSION and VERSION.sig read back and written as three PUTs; the fleet has no host yet.
    writeFileSync(path.join(src, 'version.txt'), '3.2\n');
    const r3 = await publishRelease({
      dir: src,
      name: 'my-app',
      platform: 'gnu-linux',
      version: '3.2',
      key: secret,
      passphraseFile: path.join(base, 'pass'),
      to: 's3://releases/app-updates',
      log: silentLogger,
      rollout: 1,
    });
    assert.is(r3.seq, 4);
    assert.equal([(await readVersion()).rollout, (await readVersion()).seq], [1, 4]);
    const fleet = await startPullFleet('my-app', 'fleet-secret-s3-test');
    try {
      const lines: string[] = [];
      const out = await rolloutRelease({
        name: 'my-app',
        to: 's3://releases/app-updates',
        fleet: fleet.url,
        secret: 'fleet-secret-s3-test',
        steps: [1, 100],
        waitSec: 10,
        maxFailures: { count: 0 },
        allowMissing: { count: 0 },
        rollback: false,
        key: secret,
        passphraseFile: path.join(base, 'pass'),
        pollSec: 0.1,
        log: silentLogger,
        print: (line) => lines.push(line),
      });
      assert.is(out.state, 'done', lines.join('\n'));
      assert.match(lines.join('\n'), /step 2\/2 \(ROLLOUT 100\): signed VERSION SEQ 5/);
      const rolled = await readVersion();
      assert.equal([rolled.version, rolled.rollout, rolled.seq], ['3.2', 100, 5]);
    } finally {
      await fleet.close();
    }

    // 3.3 without patches: the host on 3.1 fetches from the bucket, by Range on the tarball, only
    // the gzip member that holds what changed (the files way), not the 64 KiB that did not.
    writeFileSync(path.join(src, 'version.txt'), '3.3\n');
    await publishRelease({
      dir: src,
      name: 'my-app',
      platform: 'gnu-linux',
      version: '3.3',
      key: secret,
      passphraseFile: path.join(base, 'pass'),
      to: 's3://releases/app-updates',
      log: silentLogger,
      patches: 0,
    });
    const index = await fetch(`${endpoint}/releases/app-updates/my-app-gnu-linux-3.3.index`);
    assert.is(index.status, 200, 'the index is in the bucket');
    await index.arrayBuffer();
    const f = await runScript('launchfit', ['update', '--dir', deploy]);
    assert.is(f.exitCode, 0, f.stderr);
    assert.is(currentOf(deploy), 'releases/my-app-gnu-linux-3.3');
    assert.match(
      f.stdout + f.stderr,
      /rebuilt my-app-gnu-linux-3\.3\.tar\.gz from 3\.1 and \d+ bytes of the tarball.*way=files/,
    );
    const status = JSON.parse((await runScript('launchfit', ['status', '--dir', deploy, '--json'])).stdout);
    assert.ok(status.lastInstall.bytes < 32 * 1024, `${status.lastInstall.bytes} bytes, not the 64 KiB file`);
  } finally {
    process.env = saved;
    await s3rver.close();
  }
});

test.run();
