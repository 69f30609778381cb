// @deno
// `shipkit approve` and `shipkit approvals` end to end (docs/environments.md "Approvals"), real
// processes and gpg keys: a release published at staging waits for production's approval; alice
// approves it (1 of 1); each refused approve exits 2 naming its rule and writes nothing under
// production's approvals/; a key revoked since, or a file edited, no longer counts.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript } from '../../_helpers/common.ts';
import { exportPublic, exportSecret, genKey, revokeKey } from '../../fixtures/launchfit/gpg.ts';
import { makeWorld, type World } from '../../fixtures/launchfit/world.ts';

interface Approver {
  name: string;
  fpr: string;
  secret: string;
  public: string;
}

async function approver(w: World, name: string): Promise<Approver> {
  const key = await genKey(w.g, `${name[0].toUpperCase()}${name.slice(1)} <${name}@example.com>`);
  mkdirSync(path.join(w.base, 'keys'), { recursive: true });
  const secret = await exportSecret(w.g, key.fpr, path.join(w.base, `${name}-secret.asc`));
  const pub = await exportPublic(w.g, key.fpr, path.join(w.base, 'keys', `${name}.asc`));
  return { name, fpr: key.fpr.toLowerCase(), secret, public: pub };
}

/** shipkit.yml: my-app at staging (w.updates) and production, which needs 1 approval of alice, bob or the release key. */
function writeConfig(w: World, production: string): string {
  const file = path.join(w.base, 'shipkit.yml');
  writeFileSync(
    file,
    [
      'apps:',
      '  my-app:',
      `    key: file:${w.secretKey}`,
      '    environments:',
      `      staging: { to: ${w.updates} }`,
      `      production:`,
      `        to: ${production}`,
      '        from: staging',
      '        approvals: { required: 1, from: [keys/alice.asc, keys/bob.asc, keys/release.asc], expires: 24h }',
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(w.base, 'keys', 'release.asc'), readFileSync(w.pubAsc));
  return file;
}

test('approve, then approvals shows 1 of 1; refusals exit 2 and write nothing; revoked since or edited: not counted', async () => {
  const w = await makeWorld();
  try {
    const [alice, bob, mallory] = [await approver(w, 'alice'), await approver(w, 'bob'), await approver(w, 'mallory')];
    const production = path.join(w.base, 'production');
    mkdirSync(production);
    const config = writeConfig(w, production);
    const state = ['--state', path.join(w.base, 'st')];
    const approve = (key: string, more: string[] = [], version = '1.4.0') =>
      runScript('approve', [
        'my-app',
        version,
        '--env',
        'production',
        '--key',
        key,
        '--config',
        config,
        ...state,
        ...more,
      ]);
    const approvals = () => runScript('approvals', ['--config', config, ...state]);
    const files = () =>
      existsSync(path.join(production, 'approvals')) ? readdirSync(path.join(production, 'approvals')).sort() : [];
    await w.publish('1.4.0');

    let shown = await approvals();
    assert.is(shown.exitCode, 0, shown.stderr);
    assert.match(
      shown.stdout,
      /my-app 1\.4\.0 → production: 0 of 1 approvals \(waiting for Alice <alice@example\.com>, Bob <bob@example\.com>, Release Signer <release@example\.com>\)/,
    );

    /** A refused approve: exit 2, its message, nothing under approvals/. */
    const refused = async (run: Promise<Awaited<ReturnType<typeof approve>>>, message: RegExp) => {
      const before = files();
      const r = await run;
      assert.is(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(files(), before, 'nothing written under approvals/');
    };
    await refused(approve(mallory.secret), /is not one of the approvers \(alice, bob, release\)/);
    await refused(
      approve(w.secretKey, ['--passphrase-file', w.passFile]),
      /release \(Release Signer <release@example\.com>\) published or promoted this version: an approval must come from someone else/,
    );
    await refused(approve(alice.secret, [], '9.9'), /my-app 9\.9 was never published or promoted at staging/);
    await refused(approve(alice.secret, [], '../x'), /Invalid VERSION/);
    await refused(
      runScript('approve', [
        'my-app',
        '1.4.0',
        '--env',
        'staging',
        '--key',
        alice.secret,
        '--config',
        config,
        ...state,
      ]),
      /staging needs no approvals/,
    );
    await refused(
      runScript('approve', ['my-app', '1.4.0', '--env', 'qa', '--key', alice.secret, '--config', config, ...state]),
      /No environment qa .*staging, production/,
    );
    await refused(
      runScript('approve', ['other-app', '1.4.0', '--env', 'production', '--key', alice.secret, '--config', config]),
      /No app other-app .*my-app/,
    );
    assert.equal(files(), []);

    const ok = await approve(alice.secret);
    assert.is(ok.exitCode, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^Approved my-app 1\.4\.0 \(sha256 [0-9a-f]{64}\) for production until \S+Z: 1 of 1 approvals$/m,
    );
    const name = `my-app-1.4.0-production-${alice.fpr.slice(0, 16)}.json`;
    assert.equal(files(), [name, `${name}.sig`]);
    shown = await approvals();
    assert.is(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /my-app 1\.4\.0 → production: 1 of 1 approvals/);

    // bob approves, then his key is revoked: his approval no longer counts.
    assert.is((await approve(bob.secret)).exitCode, 0);
    assert.match((await approvals()).stdout, /2 of 1 approvals/);
    await revokeKey(w.g, bob.fpr);
    await exportPublic(w.g, bob.fpr, bob.public);
    shown = await approvals();
    assert.match(shown.stdout, /1 of 1 approvals/);
    assert.match(shown.stdout, /bob's key is revoked in .*bob\.asc/);
    await refused(approve(bob.secret), /bob's key is revoked/);

    // An approval edited after it was signed does not count.
    const file = path.join(production, 'approvals', name);
    writeFileSync(file, readFileSync(file, 'utf8').replace('"production"', '"production" '));
    shown = await approvals();
    assert.is(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /0 of 1 approvals/);
    assert.match(shown.stdout, /alice's approval is not signed by alice's key/);
  } finally {
    await w.server.close();
  }
});

test.run();
