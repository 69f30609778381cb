// Provenance for release publish: the DSSE PAE (checked against the DSSE protocol's own test
// vector), the in-toto Statement v1 / SLSA provenance v1 it signs, source facts from flags or
// the release environment, and publish writing APP-PLATFORM-V.intoto.jsonl whose signature over
// the PAE gpgv (not our code) accepts. Keys are made by gpg.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import {
  PAYLOAD_TYPE,
  pae,
  provenanceEnvelope,
  provenanceStatement,
  sourceFacts,
} from '../../../../lib/release/format/provenance.ts';
import { publishRelease, type PublishOptions } from '../../../../lib/release/publish/publish.ts';
import { runCommand, tmpDir } from '../../../_helpers/common.ts';
import { makePublisher, type TestKey } from '../../../fixtures/launchfit/gpg.ts';

let key: TestKey;
let base: string;
let secret: string;
let passFile: string;
let keyring: string;

test.before(async () => {
  base = tmpDir();
  ({ key, secret, passFile, keyring } = await makePublisher(base, 'prov pass'));
});

const t0 = new Date('2030-01-02T03:04:05Z');
const t1 = new Date('2030-01-02T03:09:00Z');

test('PAE matches the DSSE protocol test vector, and counts bytes, not characters', () => {
  assert.is(
    Buffer.from(pae('http://example.com/HelloWorld', Buffer.from('hello world'))).toString(),
    'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
  );
  assert.is(Buffer.from(pae(PAYLOAD_TYPE, Buffer.from('é'))).toString(), 'DSSEv1 28 application/vnd.in-toto+json 2 é');
  assert.is(Buffer.from(pae('t', new Uint8Array())).toString(), 'DSSEv1 1 t 0 ');
});

test('the statement: subject sha256, source repo, ref, commit, builder, start and end', () => {
  const s = provenanceStatement('a-x-1.0.tar.gz', 'ab'.repeat(32), {
    repo: 'octo/site',
    ref: 'refs/tags/v1.0',
    commit: 'c'.repeat(40),
    builderId: 'https://b.example/1',
    started: t0,
    finished: t1,
  }) as any;
  assert.is(s._type, 'https://in-toto.io/Statement/v1');
  assert.equal(s.subject, [{ name: 'a-x-1.0.tar.gz', digest: { sha256: 'ab'.repeat(32) } }]);
  assert.is(s.predicateType, 'https://slsa.dev/provenance/v1');
  assert.equal(s.predicate.buildDefinition.externalParameters.source, {
    repository: 'octo/site',
    ref: 'refs/tags/v1.0',
    commit: 'c'.repeat(40),
  });
  assert.equal(s.predicate.buildDefinition.resolvedDependencies[0].digest, { gitCommit: 'c'.repeat(40) });
  assert.is(s.predicate.runDetails.builder.id, 'https://b.example/1');
  assert.equal(s.predicate.runDetails.metadata, {
    startedOn: '2030-01-02T03:04:05.000Z',
    finishedOn: '2030-01-02T03:09:00.000Z',
  });
});

test('source facts: flags win, else SHIPKIT_REPO / SHIPKIT_TAG or SHIPKIT_REF / SHIPKIT_SHA; none without a repo', () => {
  assert.is(sourceFacts({}, {}, t0, t1), undefined);
  assert.is(sourceFacts({ ref: 'refs/tags/v1' }, { SHIPKIT_SHA: 'abc' }, t0, t1), undefined);
  const env = {
    SHIPKIT_REPO: 'octo/site',
    SHIPKIT_TAG: 'v1.4.0',
    SHIPKIT_REF: 'refs/heads/main',
    SHIPKIT_SHA: 'f'.repeat(40),
    SHIPKIT_BUILD_STARTED: '2030-01-01T00:00:00Z',
  };
  const f = sourceFacts({}, env, t0, t1)!;
  assert.equal(
    [f.repo, f.ref, f.commit, f.started.toISOString(), f.finished],
    ['octo/site', 'refs/tags/v1.4.0', 'f'.repeat(40), '2030-01-01T00:00:00.000Z', t1],
  );
  assert.is(sourceFacts({}, { SHIPKIT_REPO: 'o/n', SHIPKIT_REF: 'refs/heads/main' }, t0, t1)!.ref, 'refs/heads/main');
  assert.is(sourceFacts({}, { SHIPKIT_REPO: 'o/n', SHIPKIT_BUILD_STARTED: 'junk' }, t0, t1)!.started, t0);
  const g = sourceFacts(
    { repo: 'https://git.example/a/b', ref: 'refs/tags/v2', commit: '1'.repeat(40), builderId: 'urn:b' },
    env,
    t0,
    t1,
  )!;
  assert.equal(
    [g.repo, g.ref, g.commit, g.builderId],
    ['https://git.example/a/b', 'refs/tags/v2', '1'.repeat(40), 'urn:b'],
  );
});

test('the envelope: payloadType, base64 payload, one signature with keyid over the PAE', async () => {
  let signed: Uint8Array | undefined;
  const line = await provenanceEnvelope({ a: 1 }, 'FPR', async (data) => {
    signed = data;
    return Buffer.from('sig');
  });
  assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'one line');
  const env = JSON.parse(line);
  assert.equal(env, {
    payloadType: PAYLOAD_TYPE,
    payload: Buffer.from('{"a":1}').toString('base64'),
    signatures: [{ keyid: 'FPR', sig: Buffer.from('sig').toString('base64') }],
  });
  assert.is(Buffer.from(signed!).toString(), `DSSEv1 28 ${PAYLOAD_TYPE} 7 {"a":1}`);
});

function makeSource(name: string): string {
  const dir = path.join(base, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'server.js'), 'console.log("hi")\n');
  return dir;
}

const opts = (dir: string, to: string, more: Partial<PublishOptions> = {}): PublishOptions => ({
  dir,
  name: 'my-app',
  platform: 'gnu-linux',
  version: '1.0',
  key: secret,
  passphraseFile: passFile,
  to,
  log: silentLogger,
  env: {},
  ...more,
});

test('publish writes APP-PLATFORM-V.intoto.jsonl for the tarball; gpgv verifies its signature over the PAE', async () => {
  const out = path.join(base, 'out-prov');
  const env = { SHIPKIT_REPO: 'octo/site', SHIPKIT_TAG: 'v1.0', SHIPKIT_SHA: 'e'.repeat(40) };
  const r = await publishRelease(opts(makeSource('src-prov'), out, { env, now: () => t0 }));
  assert.is(r.provenance, 'my-app-gnu-linux-1.0.intoto.jsonl');
  const lines = readFileSync(path.join(out, r.provenance!), 'utf8').split('\n').filter(Boolean);
  assert.is(lines.length, 1);
  const envelope = JSON.parse(lines[0]);
  assert.is(envelope.payloadType, PAYLOAD_TYPE);
  assert.is(envelope.signatures[0].keyid, key.fpr.toLowerCase());
  const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
  assert.equal(statement.subject, [{ name: r.file, digest: { sha256: r.sha256 } }]);
  assert.equal(statement.predicate.buildDefinition.externalParameters.source, {
    repository: 'octo/site',
    ref: 'refs/tags/v1.0',
    commit: 'e'.repeat(40),
  });
  const paeFile = path.join(base, 'pae.bin');
  const sigFile = path.join(base, 'pae.sig');
  writeFileSync(paeFile, pae(envelope.payloadType, Buffer.from(envelope.payload, 'base64')));
  writeFileSync(sigFile, Buffer.from(envelope.signatures[0].sig, 'base64'));
  const v = await runCommand('gpgv', ['--keyring', keyring, sigFile, paeFile]);
  assert.is(v.exitCode, 0, v.stderr);
  assert.match(v.stderr, /Good signature/);
  writeFileSync(paeFile, pae(envelope.payloadType, Buffer.from(JSON.stringify({ ...statement, subject: [] }))));
  assert.is.not(
    (await runCommand('gpgv', ['--keyring', keyring, sigFile, paeFile])).exitCode,
    0,
    'another statement does not verify',
  );
});

test("publish without a source repo writes no provenance; pruning removes an old release's provenance", async () => {
  const out = path.join(base, 'out-noprov');
  const r = await publishRelease(opts(makeSource('src-noprov'), out));
  assert.is(r.provenance, undefined);
  assert.equal(
    readdirSync(out).filter((n) => n.endsWith('.intoto.jsonl')),
    [],
  );
  const out2 = path.join(base, 'out-prune');
  const source = { repo: 'octo/site' };
  await publishRelease(opts(makeSource('src-p1'), out2, { version: '1.0', source }));
  await publishRelease(opts(makeSource('src-p1'), out2, { version: '1.1', source, keep: 1 }));
  assert.equal(
    readdirSync(out2).filter((n) => n.endsWith('.intoto.jsonl')),
    ['my-app-gnu-linux-1.1.intoto.jsonl'],
  );
});

test.run();
