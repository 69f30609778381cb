// A release prepared ahead (lib/launchfit/install/staging.ts) in a real deploy folder, with keys
// made by the real gpg CLI: a staged release is taken over only for exactly its VERSION, under
// the same verifying config and a signer still trusted and not revoked, and only once; other staged
// releases are dropped; staging one already staged downloads nothing; what the policy depends on.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, silentLogger } from '../../../../lib/core/log.ts';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { deployPaths } from '../../../../lib/launchfit/deploy-folder/state.ts';
import type { UpdateContext } from '../../../../lib/launchfit/install/context.ts';
import { dropStaged, stageRelease, stagingPolicy, takeStaged } from '../../../../lib/launchfit/install/staging.ts';
import { readPublicKeys, selectTrustedKeys, type TrustedKeys } from '../../../../lib/launchfit/trust/pgp.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { addSigningSubkey, exportPublic, genKey, makeGpgHome, type TestKey } from '../../../fixtures/launchfit/gpg.ts';

const SHA = 'e'.repeat(64);
const INFO = { version: '1.2', file: 'app-gnu-linux-1.2.tar.gz', sha256: SHA, size: 1234 };
let key: TestKey;
let trusted: TrustedKeys;
let signer = '';

test.before(async () => {
  const g = makeGpgHome();
  key = await genKey(g, 'Release <release@example.com>');
  await addSigningSubkey(g, key);
  signer = key.fpr.toLowerCase();
  const pub = readFileSync(await exportPublic(g, key.fpr, path.join(tmpDir(), 'keys.asc')));
  trusted = selectTrustedKeys({ localKeys: await readPublicKeys(pub, 'keyfile') });
});

/** A deploy folder and its update context; `yml` extra lines under `updates:`. */
function host(updates: string[] = [], log = silentLogger): UpdateContext {
  const dir = tmpDir('shipkit-staging-');
  const paths = deployPaths(dir);
  mkdirSync(paths.tmp, { recursive: true });
  const yml = ['app:', '  exec: node app.js', 'updates:', '  server: http://127.0.0.1:9/', ...updates].join('\n');
  return { paths, config: parseLaunchConfigText(`${yml}\n`, path.join(dir, 'launchify.yml')), log };
}

/** A release staged as stageRelease leaves it: tmp/staged-NAME with the app, and its record beside it. */
function staged(ctx: UpdateContext, fields: Record<string, unknown> = {}, name = 'app-gnu-linux-1.2') {
  const work = path.join(ctx.paths.tmp, `staged-${name}`);
  mkdirSync(path.join(work, 'app'), { recursive: true });
  writeFileSync(path.join(work, 'app', 'server.js'), 'console.log(1)\n');
  const record = {
    file: `${name}.tar.gz`,
    version: '1.2',
    sha256: SHA,
    signer,
    signingKey: key.subFpr!.toLowerCase(),
    bytes: 99,
    way: 'patch',
    from: '1.1',
    root: 'app',
    policy: stagingPolicy(ctx.config),
    ...fields,
  };
  writeFileSync(`${work}.json`, JSON.stringify(record));
  return work;
}

test('takeStaged: exactly this VERSION, verified under this config by a trusted key: taken over once', async () => {
  const ctx = host();
  const work = staged(ctx);
  const taken = await takeStaged(ctx, INFO, trusted);
  assert.equal(taken, {
    work,
    root: path.join(work, 'app'),
    sha256: SHA,
    signer,
    signingKey: key.subFpr!.toLowerCase(),
    bytes: 99,
    way: 'patch',
    from: '1.1',
  });
  assert.is(existsSync(`${work}.json`), false, 'its record goes');
  assert.is(existsSync(path.join(work, 'app', 'server.js')), true, 'its folder is the caller’s');
  assert.is(await takeStaged(ctx, INFO, trusted), undefined, 'taken once');
  // 1.2.0 is the same version as 1.2; a record without bytes counts VERSION's size.
  const again = host();
  staged(again, { version: '1.2.0', bytes: undefined });
  assert.is((await takeStaged(again, INFO, trusted))?.bytes, 1234);
});

test('takeStaged refuses a staged release that is not for this VERSION, this config or a key trusted now', async () => {
  const revokedSub: TrustedKeys = {
    ...trusted,
    revoked: {
      [key.subFpr!.toLowerCase()]: { primary: key.fpr, reason: 'compromised', seenAt: '2026-11-25T00:00:00Z' },
    },
  };
  const revokedPrimary: TrustedKeys = {
    ...trusted,
    revoked: { [signer]: { primary: key.fpr, reason: 'retired', seenAt: '2026-11-25T00:00:00Z' } },
  };
  const cases: Array<[string, Record<string, unknown>, Partial<typeof INFO>, TrustedKeys]> = [
    ['another file', { file: 'app-gnu-linux-1.1.tar.gz' }, {}, trusted],
    ['another digest', { sha256: 'f'.repeat(64) }, {}, trusted],
    ['another version', { version: '1.2.1' }, {}, trusted],
    ['VERSION without a digest', {}, { sha256: undefined }, trusted],
    ['verified under another policy', { policy: '["off",null,null,1,2,3]' }, {}, trusted],
    ['an older record without a policy', { policy: undefined }, {}, trusted],
    ['a signer no longer trusted', { signer: 'a'.repeat(40) }, {}, trusted],
    ['a subkey of the signer revoked since', {}, {}, revokedSub],
    ['the signer revoked since', {}, {}, revokedPrimary],
    ['its folder gone', { root: 'nowhere' }, {}, trusted],
  ];
  for (const [label, fields, info, keys] of cases) {
    const ctx = host();
    const work = staged(ctx, fields);
    assert.is(await takeStaged(ctx, { ...INFO, ...info }, keys), undefined, label);
    assert.is(existsSync(`${work}.json`), true, `${label}: left for stageRelease or dropStaged`);
  }
  const torn = host();
  writeFileSync(`${staged(torn)}.json`, '{"file":');
  assert.is(await takeStaged(torn, INFO, trusted), undefined, 'a torn record');
});

test('stagingPolicy: provenance and the size limits count; the rest of the config does not', () => {
  const base = stagingPolicy(host().config);
  assert.is(stagingPolicy(host(['  interval: 60']).config), base);
  const provenance = ['  provenance: optional', '  provenance_source:', '    repo: octo/site'];
  const policies = [base];
  for (const lines of [
    ['  max_size: 1000'],
    ['  max_ratio: 7'],
    provenance,
    [...provenance, '    ref: refs/tags/*'],
    ['  provenance: required', '  provenance_source:', '    repo: octo/site'],
  ]) {
    const policy = stagingPolicy(host(lines).config);
    assert.not.ok(policies.includes(policy), lines.join(' '));
    policies.push(policy);
  }
});

test('dropStaged: every staged release but the one kept, folder and record; other files in tmp stay', async () => {
  const ctx = host();
  staged(ctx, {}, 'app-gnu-linux-1.1');
  staged(ctx, {}, 'app-gnu-linux-1.2');
  writeFileSync(path.join(ctx.paths.tmp, 'download-1.3.part'), 'x');
  await dropStaged(ctx.paths, 'app-gnu-linux-1.2');
  assert.equal(readdirSync(ctx.paths.tmp).sort(), [
    'download-1.3.part',
    'staged-app-gnu-linux-1.2',
    'staged-app-gnu-linux-1.2.json',
  ]);
  await dropStaged(ctx.paths);
  assert.equal(readdirSync(ctx.paths.tmp), ['download-1.3.part']);
  await dropStaged(deployPaths(path.join(ctx.paths.dir, 'no-such-folder')));
});

test('stageRelease of a release staged already: kept as it is, nothing downloaded; the others dropped', async () => {
  const lines: string[] = [];
  const ctx = host([], createLogger({ stream: { write: (l: string) => lines.push(l) > 0 } as never, json: true }));
  const work = staged(ctx);
  staged(ctx, {}, 'app-gnu-linux-1.1');
  // The update server is a closed port: a download would fail.
  assert.is(await stageRelease(ctx, INFO, trusted), 'app-gnu-linux-1.2');
  assert.match(lines.join(''), /release already staged and verified for this VERSION; not downloaded again/);
  assert.equal(readdirSync(ctx.paths.tmp).sort(), ['staged-app-gnu-linux-1.2', 'staged-app-gnu-linux-1.2.json']);
  assert.is(existsSync(`${work}.json`), true, 'still staged for the switch to take');
});

test.run();
