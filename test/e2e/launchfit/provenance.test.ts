// updates.provenance against real processes: releases published by `release publish` (gpg-made
// key, HTTP on loopback), installed by the real `launchfit deploy` and `launchfit update`. With
// `provenance: required` and a provenance_source, a release without provenance, with a
// provenance for another digest, repo or ref, a bad signature, a malformed envelope or an
// oversized one is refused before extraction: exit 1, `current` unchanged, nothing extracted.
// A good one installs. With updates.provenance_builder, one built by another builder is refused
// naming both ids, and one built by that builder installs.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { runScript } from '../../_helpers/common.ts';
import { currentOf, killProcessesOf, makeWorld, type World } from '../../fixtures/launchfit/world.ts';

let w: World;
const GOOD = { SHIPKIT_REPO: 'octo/site', SHIPKIT_SHA: 'a'.repeat(40) };
const provOf = (v: string) => path.join(w.updates, `my-app-gnu-linux-${v}.intoto.jsonl`);

async function publish(
  version: string,
  env: NodeJS.ProcessEnv = { ...GOOD, SHIPKIT_TAG: `v${version}` },
  source: { builderId?: string } = {},
) {
  await publishRelease({
    dir: w.makeApp(version),
    name: 'my-app',
    platform: 'gnu-linux',
    version,
    key: w.secretKey,
    passphraseFile: w.passFile,
    to: w.updates,
    log: silentLogger,
    env,
    source,
  });
}

/** A `launchfit update` that fails with `pattern`; `current` (the release named) and releases/ stay as they were. */
async function expectRefused(pattern: RegExp, current = 'my-app-gnu-linux-1.0') {
  const before = readdirSync(path.join(w.deploy, 'releases')).sort();
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 1, r.stdout + r.stderr);
  assert.match(r.stderr, pattern);
  assert.is(currentOf(w.deploy), `releases/${current}`, 'the current release keeps serving');
  assert.equal(readdirSync(path.join(w.deploy, 'releases')).sort(), before, 'nothing else extracted');
}

const SOURCE = '  provenance_source:\n    repo: https://github.com/octo/site.git\n    ref: refs/tags/v*\n';

test.before(async () => {
  w = await makeWorld();
  await publish('1.0');
  w.writeConfig(`  provenance: required\n${SOURCE}`);
  const r = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stderr);
});
test.after(() => {
  killProcessesOf(w.deploy);
  w.server.close();
});

test('a good provenance was accepted: 1.0 is current', () => {
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
});

test('a release without provenance is refused when required', async () => {
  await publish('1.1', {});
  await expectRefused(/my-app-gnu-linux-1\.1\.intoto\.jsonl is missing; updates\.provenance: required/);
});

test("a provenance for another digest (1.0's, genuinely signed)", async () => {
  await publish('1.2');
  writeFileSync(provOf('1.2'), readFileSync(provOf('1.0')));
  await expectRefused(/it is for another digest .*not my-app-gnu-linux-1\.2\.tar\.gz/);
});

test('a provenance for another repo', async () => {
  await publish('1.3', { ...GOOD, SHIPKIT_REPO: 'evil/site', SHIPKIT_TAG: 'v1.3' });
  await expectRefused(/built from repo "evil\/site", not updates\.provenance_source\.repo/);
});

test('a provenance for another ref', async () => {
  await publish('1.4', { ...GOOD, SHIPKIT_TAG: undefined, SHIPKIT_REF: 'refs/heads/main' });
  await expectRefused(
    /built from ref "refs\/heads\/main", which does not match updates\.provenance_source\.ref "refs\/tags\/v\*"/,
  );
});

test('a bad signature: the statement changed after signing', async () => {
  await publish('1.5');
  const envelope = JSON.parse(readFileSync(provOf('1.5'), 'utf8'));
  const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
  statement.predicate.buildDefinition.externalParameters.source.commit = 'b'.repeat(40);
  envelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
  writeFileSync(provOf('1.5'), `${JSON.stringify(envelope)}\n`);
  await expectRefused(/is not a valid provenance signed by a trusted key/);
});

test('a malformed envelope', async () => {
  await publish('1.6');
  writeFileSync(provOf('1.6'), '{"payloadType": "application/vnd.in-toto+json", "payload": "%%%"\n');
  await expectRefused(/is not a valid provenance signed by a trusted key \(line 1 is not JSON\)/);
});

test('an oversized provenance (over the metadata cap)', async () => {
  await publish('1.7');
  writeFileSync(provOf('1.7'), `${readFileSync(provOf('1.7'), 'utf8')}${' '.repeat(300 * 1024)}\n`);
  await expectRefused(/intoto\.jsonl is (\d+ bytes, )?more than the 262144 (bytes )?allowed/);
});

test('a good provenance installs (positive control after the refusals)', async () => {
  await publish('1.8');
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.8');
});

const BUILDER = 'https://ci.example.com/builders/release@v1';

test('updates.provenance_builder: a release built by another builder is refused, naming both ids', async () => {
  w.writeConfig(`  provenance: required\n${SOURCE}  provenance_builder: ${BUILDER}\n`);
  await publish('1.9');
  await expectRefused(
    /built by builder "https:\/\/shipkit\.dev\/release-publish", not updates\.provenance_builder "https:\/\/ci\.example\.com\/builders\/release@v1"; refusing the release/,
    'my-app-gnu-linux-1.8',
  );
  await publish('1.10', undefined, { builderId: `${BUILDER}x` });
  await expectRefused(/built by builder ".*release@v1x", not updates\.provenance_builder/, 'my-app-gnu-linux-1.8');
});

test('updates.provenance_builder: a release built by that builder installs', async () => {
  await publish('1.11', undefined, { builderId: BUILDER });
  const r = await runScript('launchfit', ['update', '--dir', w.deploy]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.11');
});

test.run();
