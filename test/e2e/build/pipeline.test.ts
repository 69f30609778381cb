// build's publish and rollout steps (docs/design.md): the build's `from` folder published as a signed
// launchfit release with a real gpg key, then a staged rollout to signed HTTP hosts on
// 127.0.0.1 — configuration errors before the build, versions that would go down, unreachable
// and hanging hosts, and SIGTERM to the job in the middle of a rollout. `mode: pull`: the rollout
// raised by percent as light hosts report to a receiver of the /fleet contract, halted and rolled back.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite, type Site } from '../../_helpers/build.ts';
import { startFleet, type Fleet } from '../../fixtures/fleet-hosts.ts';
import { startLightHosts, startPullFleet, type Behaviour } from '../../fixtures/fleet-pull.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { makePublisher, type Publisher } from '../../fixtures/launchfit/gpg.ts';
import { git, runCommand, scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';

const FLEET_SECRET = 'fleet-secret-0123456789abcdef';
const DIST = {
  'dist/server.cjs': 'require("node:http").createServer((q, s) => s.end("v1")).listen(process.env.PORT)\n',
  'dist/version.txt': '1\n',
};

let keys: Publisher;
let dir: string;
let secretFile: string;

test.before(async () => {
  dir = tmpDir('shipkit-pipeline-');
  keys = await makePublisher(dir, 'release pass');
  secretFile = path.join(dir, 'fleet-secret');
  writeFileSync(secretFile, `${FLEET_SECRET}\n`);
});

interface Pipeline {
  publish?: Record<string, string | number>;
  rollout?: Record<string, string | number | string[]> | false;
  steps?: string;
}

/** The repo block for `makeSite`: steps, publish: and rollout: as YAML lines. */
function pipelineYaml(updates: string, fleet: Fleet | undefined, p: Pipeline = {}): string {
  const publish = {
    from: 'dist',
    name: 'my-app',
    platform: 'gnu-linux',
    key: `file:${keys.secret}`,
    passphrase: `file:${keys.passFile}`,
    to: updates,
    ...p.publish,
  };
  const rollout =
    p.rollout === false || !fleet
      ? undefined
      : {
          list: fleet.list,
          secret: `file:${secretFile}`,
          canary: 1,
          waves: '[50%, 100%]',
          timeout: 10,
          retries: 0,
          ...p.rollout,
        };
  const block = (name: string, values: Record<string, unknown>) => [
    `${name}:`,
    ...Object.entries(values).map(([k, v]) => `  ${k}: ${v}`),
  ];
  return [
    `steps: ${p.steps ?? '[pull, publish, rollout]'}`,
    ...block('publish', publish),
    ...(rollout ? block('rollout', rollout) : []),
  ].join('\n');
}

async function pipelineSite(fleet: Fleet | undefined, p: Pipeline = {}): Promise<{ site: Site; updates: string }> {
  const updates = path.join(tmpDir('shipkit-updates-'), 'my-app');
  const site = await makeSite({ 'README.md': '# site\n', ...DIST }, pipelineYaml(updates, fleet, p));
  return { site, updates };
}

const versionOf = (updates: string) => /^CURRENT (\S+) /.exec(readFileSync(path.join(updates, 'VERSION'), 'utf8'))?.[1];

test('configuration errors exit 2 before the build runs: no job in the log, nothing published', async () => {
  const fleet = await startFleet(dir, FLEET_SECRET, ['ok', 'ok', 'ok']);
  try {
    const wrongPass = path.join(dir, 'wrong-pass');
    writeFileSync(wrongPass, 'not the passphrase\n');
    const cases: Array<[Pipeline, RegExp]> = [
      [
        { publish: { key: `file:${path.join(dir, 'missing.asc')}` } },
        /publish\.key: Cannot read the secret key .*missing\.asc \(ENOENT\)/,
      ],
      [
        { publish: { passphrase: `file:${wrongPass}` } },
        /publish\.key: The passphrase in .*wrong-pass does not unlock/,
      ],
      [
        { publish: { from: '../outside' } },
        /publish\.from: must be a folder inside the repository such as dist .*"\.\."/,
      ],
      [{ rollout: { waves: '[25%, 50%]' } }, /rollout\.waves: must end at 100% \(got 50%\)/],
      [
        { rollout: { waves: '[10%, 100%]' } },
        /rollout: waves: wave 1 \(10%\) adds no host: 10% of the 2 host\(s\) after the canary rounds to 0/,
      ],
      [
        { rollout: { list: path.join(dir, 'no-such-list.txt') } },
        /rollout\.list: The slave list .*no-such-list\.txt does not exist/,
      ],
      [{ rollout: { canary: 5 } }, /rollout: canary: 5 is more than the 3 target\(s\)/],
    ];
    for (const [p, pattern] of cases) {
      const { site, updates } = await pipelineSite(fleet, p);
      const r = await site.run('build', ['octo/site']);
      assert.is(r.exitCode, 2, `${JSON.stringify(p)}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.not.match(r.stderr, /release pass|not the passphrase/, 'the passphrase is never printed');
      assert.not.ok(existsSync(path.join(site.logsDir, 'logs.txt')), 'the job never started');
      assert.not.ok(existsSync(site.repoDir), 'nothing was cloned');
      assert.not.ok(existsSync(updates), 'nothing was published');
    }
    assert.equal(
      fleet.hosts.map((h) => h.hits.length),
      [0, 0, 0],
      'no host was told',
    );
  } finally {
    fleet.close();
  }
});

/** The update requests a host got (`/?repo=…&wait=1`), not the prepares. */
const updatesTo = (h: { hits: Array<{ path: string }> }) => h.hits.filter((x) => x.path.startsWith('/?')).length;

test('a push publishes a growing version and rolls it out wave by wave; a push with the same bytes publishes and rolls out nothing', async () => {
  const fleet = await startFleet(dir, FLEET_SECRET, ['ok', 'ok', 'ok', 'ok', 'ok']);
  // Hosts that take a while to answer, as launchfit hosts do (a health hold): the next wave prepares meanwhile.
  for (const h of fleet.hosts) h.delayMs = 1500;
  try {
    const { site, updates } = await pipelineSite(fleet);
    const before = Date.now();
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 0, r.stderr + site.logText());
    const version = versionOf(updates)!;
    assert.match(version, /^0\.[0-9a-f]{11}$/);
    assert.ok(parseInt(version.slice(2), 16) >= before, 'the version is the build time in ms, in hex');
    assert.ok(readdirSync(updates).includes(`my-app-gnu-linux-${version}.tar.gz.sig`));
    // The canary is told to update; every later host is told to prepare (as the wave before its own starts), then to update.
    fleet.hosts.forEach((h, i) =>
      assert.equal(
        h.hits.map((x) => [x.path, x.signed]),
        [...(i ? [['/prepare?repo=my-app', true]] : []), ['/?repo=my-app&wait=1', true]],
      ),
    );
    const canaryAnswered = fleet.hosts[0].hits[0].at + fleet.hosts[0].delayMs; // it answers after its delay
    assert.ok(
      Math.min(...fleet.hosts.slice(1).map((h) => h.hits.find((x) => x.path.startsWith('/?'))!.at)) >= canaryAnswered,
      'the waves start after the canary answered',
    );
    assert.ok(
      Math.max(...fleet.hosts.slice(1, 3).map((h) => h.hits[0].at)) < canaryAnswered,
      'wave 1 was told to prepare while the canary updated',
    );
    const log = site.logText();
    assert.match(
      log,
      /rollout: my-app \S+ to 5 host\(s\) in 3 wave\(s\): canary 1, wave 1 \(50%\) 2, wave 2 \(100%\) 2/,
    );
    assert.match(log, /--- step rollout ok .*3 wave\(s\), 5\/5 host\(s\) updated/);

    await site.commit({ 'README.md': '# site, reworded\n' });
    const again = await site.run('build', ['octo/site']);
    assert.is(again.exitCode, 0, again.stderr);
    assert.is(versionOf(updates), version, 'VERSION is untouched');
    assert.match(site.logText(), /publish: nothing new: dist packs to the same bytes as the published/);
    assert.match(site.logText(), /--- step rollout skipped: nothing new to roll out/);
    assert.equal(fleet.hosts.map(updatesTo), [1, 1, 1, 1, 1], 'the fleet was not told again');
    assert.equal(
      fleet.hosts.map((h) => h.hits.length),
      [1, 2, 2, 2, 2],
      'nor to prepare',
    );

    await site.commit({ 'dist/version.txt': '2\n' });
    const third = await site.run('build', ['octo/site']);
    assert.is(third.exitCode, 0, third.stderr);
    assert.ok(
      parseInt(versionOf(updates)!.slice(2), 16) > parseInt(version.slice(2), 16),
      'a new build has a higher version',
    );
    assert.equal(fleet.hosts.map(updatesTo), [2, 2, 2, 2, 2]);
  } finally {
    fleet.close();
  }
});

test('publish: from: . leaves out .git, and node_modules with exclude:; the log says what was packed', async () => {
  const updates = path.join(tmpDir('shipkit-updates-'), 'my-app');
  const yaml = pipelineYaml(updates, undefined, {
    steps: '[pull, publish]',
    publish: { from: '.', exclude: '[node_modules]' },
    rollout: false,
  });
  const site = await makeSite({ 'README.md': '# site\n', 'node_modules/left-pad/index.js': '1\n', ...DIST }, yaml);
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(site.logText(), /publish: packed \d+ files \(\d+ bytes\) from \.; left out: \.git, node_modules/);
  const tarball = readdirSync(updates).find((f) => f.endsWith('.tar.gz'))!;
  const entries = (await runCommand('tar', ['-tzf', path.join(updates, tarball)])).stdout.split('\n');
  assert.ok(entries.includes('dist/server.cjs'), entries.join(' '));
  assert.not.ok(
    entries.some((e) => /(^|\/)(\.git|node_modules)(\/|$)/.test(e)),
    entries.join(' '),
  );
});

test("a push to an environment's branch: built with its env: (the secret masked in the log), published into its DEST", async () => {
  const staging = path.join(tmpDir('shipkit-updates-'), 'staging');
  const token = `stage-${randomBytes(8).toString('hex')}`;
  const yaml = pipelineYaml('unused', undefined, { steps: '[pull, compile, publish]', rollout: false })
    .replace(/^ {2}to: .*\n?/m, '')
    .concat('\ncompile: echo "api=$API_URL token=$STAGE_TOKEN" > dist/env.txt; echo "saw token=$STAGE_TOKEN"');
  const apps = [
    'apps:',
    '  my-app:',
    '    environments:',
    `      staging: { to: ${staging}, branches: [main], env: { API_URL: https://staging.example.com, STAGE_TOKEN: env:STAGE_TOKEN } }`,
  ].join('\n');
  const site = await makeSite(
    { 'README.md': '# site\n', ...DIST },
    `env: { API_URL: http://localhost, OWN: "1" }\n${yaml}`,
    apps,
  );
  const r = await site.run('build', ['octo/site'], { STAGE_TOKEN: token });
  assert.is(r.exitCode, 0, r.stderr);
  const tarball = readdirSync(staging).find((f) => f.endsWith('.tar.gz'));
  assert.ok(tarball, `published into staging: ${readdirSync(staging).join(' ')}`);
  const envTxt = (await runCommand('tar', ['-xzOf', path.join(staging, tarball!), 'env.txt'])).stdout;
  assert.is(envTxt, `api=https://staging.example.com token=${token}\n`, "the environment's value over the repo's");
  assert.match(site.logText(), /saw token=\*{3}/);
  assert.not.ok(site.logText().includes(token), 'the secret is masked in the log');
  assert.not.ok(r.stdout.includes(token) || r.stderr.includes(token), 'nor printed');
});

test('a tag publishes its version; a version that would go down or a tag that is no version fails the step, nothing published', async () => {
  const { site, updates } = await pipelineSite(undefined, { steps: '[pull, publish]' });
  const tagAndPush = async (tag: string) => {
    await git(site.work, 'tag', tag);
    await git(site.work, 'push', '--quiet', 'origin', tag);
  };
  await tagAndPush('v9.0');
  const tagged = await site.run('build', ['octo/site', '--ref', 'refs/tags/v9.0']);
  assert.is(tagged.exitCode, 0, tagged.stderr + site.logText());
  assert.is(versionOf(updates), '9.0');
  // The provenance names what was built: the repo, the tag's ref and its commit.
  const envelope = JSON.parse(readFileSync(path.join(updates, 'my-app-gnu-linux-9.0.intoto.jsonl'), 'utf8'));
  const source = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()).predicate.buildDefinition
    .externalParameters.source;
  const tagSha = (await git(site.work, 'rev-parse', 'v9.0^{commit}')).stdout.trim();
  assert.equal(source, { repository: 'octo/site', ref: 'refs/tags/v9.0', commit: tagSha });

  await site.commit({ 'dist/version.txt': '2\n' });
  const down = await site.run('build', ['octo/site']);
  assert.is(down.exitCode, 1);
  assert.match(
    down.stderr,
    /failed at step publish: The version of this build, 0\.[0-9a-f]+, is lower than the published 9\.0; launchfit hosts refuse to go down/,
  );
  assert.is(versionOf(updates), '9.0');
  assert.equal(
    readdirSync(updates).filter((f) => f.endsWith('.tar.gz')),
    ['my-app-gnu-linux-9.0.tar.gz'],
  );

  await tagAndPush('v9.1-rc1');
  const bad = await site.run('build', ['octo/site', '--ref', 'refs/tags/v9.1-rc1']);
  assert.is(bad.exitCode, 1);
  assert.match(
    bad.stderr,
    /The tag "v9\.1-rc1" is not a launchfit version \(it must be dot-separated hexadecimal segments/,
  );
  assert.is(versionOf(updates), '9.0');
});

test('unreachable hosts are failures of their wave: the rollout halts there, later waves are not contacted, the job fails naming them', async () => {
  const fleet = await startFleet(dir, FLEET_SECRET, ['ok', 'ok', 'down', 'ok', 'ok']);
  try {
    const { site } = await pipelineSite(fleet);
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 1);
    const down = fleet.hosts[2].url;
    assert.match(
      r.stderr,
      new RegExp(
        `failed at step rollout: The rollout halted at wave 1 \\(50%\\): 1 host\\(s\\) failed \\(at most 0 allowed\\): ${down}; 2 host\\(s\\) of later waves were not contacted`,
      ),
    );
    assert.match(site.logText(), new RegExp(`FAIL  ${down} connection refused`));
    assert.equal(fleet.hosts.map(updatesTo), [1, 1, 0, 0, 0]);
    // Waves that end at once (hosts answering without delay, one refusing) send no prepare.
    assert.equal(
      fleet.hosts.map((h) => h.hits.length),
      [1, 1, 0, 0, 0],
    );
  } finally {
    fleet.close();
  }
});

test('a canary that does not answer in time halts the rollout at the canary', async () => {
  const fleet = await startFleet(dir, FLEET_SECRET, ['hang', 'ok', 'ok']);
  try {
    const { site } = await pipelineSite(fleet, { rollout: { timeout: 3 } });
    const t0 = Date.now();
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `The rollout halted at canary: 1 host\\(s\\) failed \\(at most 0 allowed\\): ${fleet.hosts[0].url}; 2 host\\(s\\) of later waves were not told to update \\(some only to prepare\\)`,
      ),
    );
    assert.match(site.logText(), /FAIL  \S+ no answer within 3s/);
    assert.equal(fleet.hosts.map(updatesTo), [1, 0, 0]);
    assert.equal(
      fleet.hosts.map((h) => h.hits.length),
      [1, 1, 0],
      'wave 1 was told to prepare while the canary hung; wave 2 not even that',
    );
    assert.ok(Date.now() - t0 < 30_000);
  } finally {
    fleet.close();
  }
});

test('SIGTERM to the job during the canary: later waves are not contacted and the log says so', async () => {
  const fleet = await startFleet(dir, FLEET_SECRET, ['ok', 'ok', 'ok']);
  fleet.hosts[0].delayMs = 5_000;
  try {
    const { site } = await pipelineSite(fleet);
    const [cmd, ...pre] = scriptCommand('build');
    const child = spawn(cmd, [...pre, 'octo/site', '--config', site.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => fleet.hosts[0].hits.length > 0, { timeoutMs: 60_000, what: 'the canary to be asked' });
    child.kill('SIGTERM');
    assert.is(await exited, 1, stderr);
    // Whether wave 1 was told to prepare depends on how soon the SIGTERM came; never to update.
    assert.match(
      stderr,
      /failed at step rollout: The rollout was interrupted after 1 wave\(s\); 2 host\(s\) of later waves were not (contacted|told to update \(some only to prepare\))/,
    );
    assert.match(
      site.logText(),
      /rollout: interrupted \(the job received SIGTERM\); later waves not told to update; 2 host\(s\)/,
    );
    assert.equal(fleet.hosts.map(updatesTo), [1, 0, 0]);
  } finally {
    fleet.close();
  }
});

test('rollout: mode: pull: publish writes ROLLOUT = the first step, the rollout step raises it as hosts report; a failed host halts it and rolls back to the release before', async () => {
  const fleet = await startPullFleet('my-app', FLEET_SECRET);
  const roles: Record<string, Behaviour> = Object.fromEntries(
    Array.from({ length: 6 }, () => [randomHostId(), 'ok' as const]),
  );
  const updates = path.join(tmpDir('shipkit-updates-'), 'my-app');
  let first = '';
  const hosts = startLightHosts(fleet, updates, roles, { running: '0.1', badVersion: (v) => v !== first });
  try {
    const repoYaml = [
      'steps: [pull, publish, rollout]',
      'publish:',
      '  from: dist',
      '  name: my-app',
      '  platform: gnu-linux',
      `  key: file:${keys.secret}`,
      `  passphrase: file:${keys.passFile}`,
      `  to: ${updates}`,
      'rollout:',
      '  mode: pull',
      '  steps: [1, 50, 100]',
      '  wait: 30',
      `  fleet_url: ${fleet.url}`,
    ].join('\n');
    const site = await makeSite(
      { 'README.md': '# site\n', ...DIST },
      repoYaml,
      `fleet:\n  my-app:\n    secret: file:${secretFile}`,
    );
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 0, r.stderr + site.logText());
    first = versionOf(updates)!;
    const log = site.logText();
    assert.match(log, new RegExp(`rollout: pull, my-app to .* in steps 1, 50, 100%, hosts report to ${fleet.url}`));
    assert.match(log, /rollout: step 1\/3 \(ROLLOUT 1\): VERSION at DEST is at this step already \(SEQ 1\)/);
    assert.match(log, /rollout: step 3\/3 \(ROLLOUT 100\): expected 6, reported 6, updated 6, failed 0, pending 0/);
    assert.match(log, /--- step rollout ok .*pull rollout of \S+ at ROLLOUT 100 \(SEQ 3\): 6\/6 host\(s\) updated/);
    let info = parseVersionFile(readFileSync(path.join(updates, 'VERSION'), 'utf8'));
    assert.equal([info.version, info.seq, info.rollout], [first, 3, 100]);
    assert.ok([...hosts.seen.values()].every((v) => v === first));
    assert.is(fleet.rollouts.at(-1)?.state, 'done');
    assert.equal(fleet.refused, []);

    // The next release: one host fails it; the step halts and VERSION names the first release again.
    roles[Object.keys(roles)[0]] = 'fail';
    await site.commit({ 'dist/version.txt': '2\n' });
    const second = await site.run('build', ['octo/site']);
    assert.is(second.exitCode, 1, second.stderr + site.logText());
    const log2 = site.logText();
    assert.match(
      log2,
      /rollout: step \d\/3 \(ROLLOUT \d+\): halted: 1 of \d+ hosts? failed at \d+%, more than --max-failures 0: [0-9a-f]{12} rolled_back \(health check \/healthz answered 500\)/,
    );
    assert.match(log2, /!!! step rollout failed after .*: rollout halted \(1 of .*\); rolled back to \S+ with SEQ \d+/);
    info = parseVersionFile(readFileSync(path.join(updates, 'VERSION'), 'utf8'));
    assert.is(info.version, first, 'VERSION names the release before');
    assert.ok(info.seq! > 4, `SEQ ${info.seq} is above every SEQ of the halted rollout`);
    assert.is(
      (
        await runCommand('gpgv', [
          '--keyring',
          keys.keyring,
          path.join(updates, 'VERSION.sig'),
          path.join(updates, 'VERSION'),
        ])
      ).exitCode,
      0,
    );
    await waitFor(() => [...hosts.seen.values()].every((v) => v === first), {
      what: 'every host back on the first release',
    });
    assert.is(fleet.rollouts.at(-1)?.state, 'rolled_back');
  } finally {
    hosts.stop();
    await fleet.close();
  }
});

const randomHostId = () => randomBytes(16).toString('hex');

test.run();
