// @deno
// Trust binds a host to its app, against a running `launchfit run` with my-app-gnu-linux-1.0:
// releases genuinely signed by the trusted key (by `release publish` or by gpg) that are for
// another app, another platform or carry another version than their file name are refused, the
// running app, `current` and the highest-version mark stay as they were. Duplicate VERSION keys
// are refused. (Fresh deploy folders, 304s and slow servers: e2e/launchfit-version.test.ts.)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { tmpDir } from '../../_helpers/common.ts';
import {
  FILE,
  expectRefused,
  nextSeq,
  serveStaged,
  setUp,
  signWithGpg,
  signedVersion,
  stage11,
  tearDown,
  w,
} from '../../fixtures/launchfit/hostile.ts';
import { statusOf } from '../../fixtures/launchfit/world.ts';

test.before(setUp);
test.after(tearDown);

/** A release as `release publish` makes it (tarball, .sig, VERSION with APP/PLATFORM, VERSION.sig), for any app and platform. */
async function stageRelease(name: string, platform: string, version: string): Promise<string> {
  const dir = tmpDir('shipkit-stage-');
  await publishRelease({
    dir: w.makeApp(version),
    name,
    platform,
    version,
    key: w.secretKey,
    passphraseFile: w.passFile,
    to: dir,
    log: silentLogger,
    seq: nextSeq(),
  });
  return dir;
}

async function expectHighestUnchanged() {
  const s = await statusOf(w.deploy);
  assert.is(s.highest, '1.0', 'the highest-version mark was not raised');
  assert.equal(s.binding, { prefix: 'my-app-gnu-linux', app: 'my-app', platform: 'gnu-linux' });
  assert.is(s.lastCheck.ok, false);
}

test('the first install bound the host to APP my-app, PLATFORM gnu-linux', async () => {
  const s = await statusOf(w.deploy);
  assert.equal(s.binding, { prefix: 'my-app-gnu-linux', app: 'my-app', platform: 'gnu-linux' });
  assert.match(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'), /\nAPP my-app\nPLATFORM gnu-linux\n/);
});

test('another app, published and signed by the trusted key (other-app-gnu-linux-1.77)', async () => {
  serveStaged(await stageRelease('other-app', 'gnu-linux', '1.77'));
  await expectRefused(
    /offers other-app-gnu-linux-1\.77\.tar\.gz \(APP other-app on PLATFORM gnu-linux\), but this host runs APP my-app on PLATFORM gnu-linux; refusing/,
  );
  await expectHighestUnchanged();
});

test('another platform, published and signed by the trusted key (my-app-darwin-arm64-1.78)', async () => {
  serveStaged(await stageRelease('my-app', 'darwin-arm64', '1.78'));
  await expectRefused(
    /offers my-app-darwin-arm64-1\.78\.tar\.gz \(APP my-app on PLATFORM darwin-arm64\), but this host runs APP my-app on PLATFORM gnu-linux/,
  );
  await expectHighestUnchanged();
});

test("another app's release under a signed VERSION without APP/PLATFORM lines (an older publisher)", async () => {
  const dir = await stageRelease('other-app', 'gnu-linux', '1.77');
  serveStaged(dir, await signedVersion('CURRENT 1.77 other-app-gnu-linux-1.77.tar.gz\n'));
  await expectRefused(/offers other-app-gnu-linux-1\.77\.tar\.gz, but this host runs APP my-app on PLATFORM gnu-linux/);
  await expectHighestUnchanged();
});

test('APP/PLATFORM lines that disagree with the file name', async () => {
  const dir = await stageRelease('other-app', 'gnu-linux', '1.77');
  serveStaged(
    dir,
    await signedVersion('CURRENT 1.77 other-app-gnu-linux-1.77.tar.gz\nAPP my-app\nPLATFORM gnu-linux\n'),
  );
  await expectRefused(
    /VERSION says APP my-app and PLATFORM gnu-linux but names the file other-app-gnu-linux-1\.77\.tar\.gz/,
  );
  await expectHighestUnchanged();
});

test('fast-forward: CURRENT ff.0 naming the genuinely signed 1.1 tarball', async () => {
  const dir = await stage11();
  serveStaged(dir, await signedVersion(`CURRENT ff.0 ${FILE}\nAPP my-app\nPLATFORM gnu-linux\n`));
  await expectRefused(
    /VERSION offers version ff\.0 but names the file my-app-gnu-linux-1\.1\.tar\.gz, which is not NAME-ff\.0\.tar\.gz/,
  );
  serveStaged(dir, await signedVersion(`CURRENT ff.0 ${FILE}\n`));
  await expectRefused(/the version in VERSION must be the one in the file name/);
  await expectHighestUnchanged();
});

for (const key of ['SHA256', 'SIZE', 'EXPIRES', 'APP', 'PLATFORM']) {
  test(`a signed VERSION with ${key} twice (the last one would have won)`, async () => {
    const dir = await stage11();
    const genuine = readFileSync(path.join(dir, 'VERSION'), 'utf8');
    const line = genuine.split('\n').find((l) => l.startsWith(`${key} `))!;
    const other: Record<string, string> = {
      SHA256: `SHA256 ${'0'.repeat(64)}`,
      SIZE: 'SIZE 1',
      EXPIRES: 'EXPIRES 2999-01-01T00:00:00Z',
      APP: 'APP other-app',
      PLATFORM: 'PLATFORM darwin-arm64',
    };
    serveStaged(dir, await signedVersion(genuine.replace(`${line}\n`, `${line}\n${other[key]}\n`)));
    await expectRefused(new RegExp(`VERSION is invalid: VERSION line \\d+: ${key} appears twice`));
  });
}

test('the tarball .sig by gpg, VERSION by release publish: the genuine 1.1 still installs (positive control)', async () => {
  const dir = await stage11();
  serveStaged(dir, { [`${FILE}.sig`]: await signWithGpg(path.join(dir, FILE)) });
  const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
  assert.is(answer!.body.ok, true, JSON.stringify(answer!.body));
  const s = await statusOf(w.deploy);
  assert.is(s.highest, '1.1');
  assert.is(s.current, 'my-app-gnu-linux-1.1');
});

test.run();
