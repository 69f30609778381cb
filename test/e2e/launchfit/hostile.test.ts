// @deno
// Hostile signatures, VERSION files and servers against a running `launchfit run`: each update
// attempt is refused with a message that says why, and the running app (same pid) and `current`
// stay exactly as they were. Releases are made by `release publish` or by hand, signed with gpg.
// (Hostile archives and hooks: e2e/launchfit-hostile-archive.test.ts.)
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { runScript } from '../../_helpers/common.ts';
import { detachSign, genKey } from '../../fixtures/launchfit/gpg.ts';
import {
  FILE,
  expectRefused,
  rememberAppPid,
  serve,
  serveStaged,
  setUp,
  signWithGpg,
  signedVersion,
  stage11,
  tearDown,
  w,
} from '../../fixtures/launchfit/hostile.ts';
import { askApp } from '../../fixtures/launchfit/world.ts';

test.before(setUp);
test.after(tearDown);

test('tarball changed by one byte: SHA256 in VERSION catches it', async () => {
  const dir = await stage11();
  const tgz = readFileSync(path.join(dir, FILE));
  tgz[Math.floor(tgz.length / 2)] ^= 1;
  serveStaged(dir, { [FILE]: tgz });
  await expectRefused(/does not match SHA256/);
});

test('tarball changed by one byte without SHA256/SIZE: the signature catches it', async () => {
  const dir = await stage11();
  const tgz = readFileSync(path.join(dir, FILE));
  tgz[Math.floor(tgz.length / 2)] ^= 1;
  serveStaged(dir, { [FILE]: tgz, ...(await signedVersion(`CURRENT 1.1 ${FILE}\n`)) });
  await expectRefused(/signature of my-app-gnu-linux-1\.1\.tar\.gz does not verify/);
});

test('.sig from another key', async () => {
  const dir = await stage11();
  const other = await genKey(w.g, 'Mallory <m@example.com>');
  const sig = await detachSign(w.g, other.fpr, path.join(dir, FILE), { out: path.join(dir, 'other.sig') });
  serveStaged(dir, { [`${FILE}.sig`]: readFileSync(sig), 'other.sig': null });
  await expectRefused(/made by key [0-9a-f]{16}, which is not trusted/);
});

test('.sig over another file', async () => {
  const dir = await stage11();
  writeFileSync(path.join(dir, 'other.txt'), 'something else');
  const sig = await signWithGpg(path.join(dir, 'other.txt'));
  serveStaged(dir, { [`${FILE}.sig`]: sig, 'other.txt': null });
  await expectRefused(/does not verify/);
});

test('.sig truncated', async () => {
  const dir = await stage11();
  const sig = readFileSync(path.join(dir, `${FILE}.sig`));
  serveStaged(dir, { [`${FILE}.sig`]: sig.subarray(0, sig.length - 20) });
  await expectRefused(/not a valid OpenPGP signature|does not verify/);
});

test('.sig armored junk', async () => {
  const dir = await stage11();
  serveStaged(dir, {
    [`${FILE}.sig`]: '-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n=AAAA\n-----END PGP SIGNATURE-----\n',
  });
  await expectRefused(/not a valid OpenPGP signature/);
});

test('.sig missing', async () => {
  const dir = await stage11();
  serveStaged(dir, { [`${FILE}.sig`]: null });
  await expectRefused(/\.sig is missing; unsigned releases are never installed/);
});

test('an armored .sig made by gpg is accepted (then the release is taken back out)', async () => {
  // The positive control for the cases above: same release, gpg's armored signature.
  const dir = await stage11();
  const sig = await signWithGpg(path.join(dir, FILE), { armor: true });
  serveStaged(dir, { [`${FILE}.sig`]: sig });
  const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
  assert.is(answer!.body.ok, true, JSON.stringify(answer!.body));
  assert.is(await askApp(w.appPort), '1.1');
  const back = await runScript('launchfit', ['rollback', '--dir', w.deploy]);
  assert.is(back.exitCode, 0, back.stderr);
  for (let i = 0; i < 200 && (await askApp(w.appPort)) !== '1.0'; i++) await new Promise((res) => setTimeout(res, 100));
  assert.is(await askApp(w.appPort), '1.0');
  // Forget 1.1's bad mark and installation so the following cases start from 1.0 again.
  rmSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1'), { recursive: true, force: true });
  const stateFile = path.join(w.deploy, '.launchfit/state.json');
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  state.bad = [];
  state.highest = '1.0';
  state.previous = undefined;
  delete state.installed['my-app-gnu-linux-1.1'];
  writeFileSync(stateFile, JSON.stringify(state));
  await rememberAppPid();
});

test('VERSION.sig from another key or over another VERSION', async () => {
  const dir = await stage11();
  const other = await genKey(w.g, 'Eve <e@example.com>');
  const sig = await detachSign(w.g, other.fpr, path.join(dir, 'VERSION'), { out: path.join(dir, 'v.sig') });
  serveStaged(dir, { 'VERSION.sig': readFileSync(sig), 'v.sig': null });
  await expectRefused(/signature of VERSION was made by key/);
  serveStaged(dir, { VERSION: readFileSync(path.join(dir, 'VERSION'), 'utf8').replace('1.1', '1.1.0') });
  await expectRefused(/signature of VERSION does not verify/);
});

test('VERSION.sig stripped after a signed VERSION was seen (metadata downgrade)', async () => {
  const dir = await stage11();
  serveStaged(dir, { 'VERSION.sig': null });
  await expectRefused(/VERSION\.sig is missing, but this host has seen a signed VERSION before/);
});

for (const [label, file] of [
  ['../x.tar.gz', '../x.tar.gz'],
  ['/etc/passwd', '/etc/passwd'],
  ['a/b.tar.gz', 'a/b.tar.gz'],
]) {
  test(`VERSION naming ${label}`, async () => {
    serve(await signedVersion(`CURRENT 1.1 ${file}\n`));
    await expectRefused(/Invalid release file name/);
  });
}

test('VERSION naming ../x.tar.gz, /etc/passwd, a/b.tar.gz (signed by the trusted key)', async () => {
  for (const file of ['../x.tar.gz', '/etc/passwd', 'a/b.tar.gz']) {
    serve(await signedVersion(`CURRENT 1.1 ${file}\n`));
    await expectRefused(/VERSION is invalid: Invalid release file name/);
  }
  assert.not.ok(existsSync(path.join(w.deploy, '..', 'x.tar.gz')), 'nothing written next to the deploy folder');
  assert.equal(
    readdirSync(path.join(w.deploy, '.launchfit/downloads')).filter((n) => !n.startsWith('my-app-')),
    [],
  );
});

test('a non-hex version, a lower version, an expired VERSION', async () => {
  serve(await signedVersion(`CURRENT 1.1g ${FILE}\n`));
  await expectRefused(/dot-separated hexadecimal/);
  // A lower version under a SEQ the host already passed is a replay (docs/design.md); only a newer
  // SEQ may go below the version high-water mark (test/e2e/release/rollback.test.ts).
  serve(await signedVersion('CURRENT 0.f my-app-gnu-linux-0.f.tar.gz\nSEQ 1\n'));
  await expectRefused(
    /VERSION has SEQ 1, (lower than SEQ \d+ this host accepted|which this host already accepted for my-app-gnu-linux-1\.0\.tar\.gz, but names my-app-gnu-linux-0\.f\.tar\.gz); refusing a replayed/,
  );
  const dir = await stage11();
  serveStaged(dir, await signedVersion(`CURRENT 1.1 ${FILE}\nEXPIRES 2020-01-01T00:00:00Z\n`));
  await expectRefused(/VERSION expired on 2020-01-01/);
});

test('a 10 MB VERSION', async () => {
  serve({ VERSION: `CURRENT 1.1 ${FILE}\n${'# padding\n'.repeat(1024 * 1024)}` });
  await expectRefused(/more than the 65536 (bytes )?allowed/);
});

test('a server sending more than SIZE (declared and chunked)', async () => {
  const dir = await stage11();
  const tgz = readFileSync(path.join(dir, FILE));
  serveStaged(dir, await signedVersion(`CURRENT 1.1 ${FILE}\nSIZE ${tgz.length - 100}\n`));
  await expectRefused(/more than the \d+ allowed by SIZE in VERSION/);
  w.server.overrides.set(FILE, (_req, res) => {
    res.writeHead(200); // no Content-Length: chunked, the cap is enforced while reading
    res.write(tgz);
    res.end(Buffer.alloc(4096));
    return true;
  });
  try {
    await expectRefused(/sent more than the \d+ bytes allowed by SIZE/);
  } finally {
    w.server.overrides.delete(FILE);
  }
});

test('a server stalling mid-body (idle timeout)', async () => {
  const dir = await stage11();
  const tgz = readFileSync(path.join(dir, FILE));
  serveStaged(dir);
  w.server.overrides.set(FILE, (_req, res) => {
    res.writeHead(200, { 'Content-Length': tgz.length });
    res.write(tgz.subarray(0, 100)); // and then nothing
    return true;
  });
  try {
    await expectRefused(/the body stalled for 1 s/);
  } finally {
    w.server.overrides.delete(FILE);
    rmSync(path.join(w.deploy, '.launchfit/downloads'), { recursive: true, force: true });
  }
});

test('the real script reports a refused update with exit 1 (socket path)', async () => {
  serve(await signedVersion('CURRENT 1.1 ../x.tar.gz\n'));
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /Invalid release file name/);
});

test.run();
