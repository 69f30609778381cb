// A push through hook-server runs the whole pipeline — the real build publishes a signed release
// and rolls it out to real launchfit hosts on 127.0.0.1 — and hook-server restarted in the
// middle of the rollout marks the job interrupted and runs it again, which is safe: the hosts
// already current answer 200 "up to date", the others are updated, the job succeeds.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { deliverGithub, fetchJob, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { exportPublic, makePublisher } from '../../fixtures/launchfit/gpg.ts';
import { startUpdateServer } from '../../fixtures/launchfit/update-server.ts';
import {
  deployLaunchfitHosts,
  startLaunchfitHosts,
  stopLaunchfitHosts,
  writePipelineConfig,
  writeSlaveList,
  type LaunchfitHost,
} from '../../fixtures/launchfit/hosts.ts';
import { APP_SOURCE, askApp } from '../../fixtures/launchfit/world.ts';
import { freePort, makeBareRepo, runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const HOOK_SECRET = `hook-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const FLEET_SECRET = `fleet-${randomUUID()}`;
const APP_YML = 'app:\n  exec: node server.cjs\n  healthy_after: 1.5\n  kill_timeout: 2\n';

test('hook-server restarted during a rollout: the job is interrupted, queued again, and its re-run completes the rollout', async () => {
  const base = tmpDir('shipkit-hs-pipeline-');
  const keys = await makePublisher(base, 'release pass');
  const pubAsc = await exportPublic(keys.g, keys.key.fpr, path.join(base, 'pub.asc'));
  const updates = path.join(base, 'updates');
  mkdirSync(updates);
  const server = await startUpdateServer(updates);
  const fleetSecret = path.join(base, 'fleet-secret');
  writeFileSync(fleetSecret, `${FLEET_SECRET}\n`);
  let hosts: LaunchfitHost[] = [];
  let hook: Server | undefined;
  try {
    // Release 0.1, installed on two hosts by `launchfit deploy`, then supervised by `launchfit run`.
    const first = path.join(base, 'first');
    mkdirSync(first);
    copyFileSync(APP_SOURCE, path.join(first, 'server.cjs'));
    writeFileSync(path.join(first, 'version.txt'), '0.1\n');
    writeFileSync(path.join(first, 'launchify.yml'), APP_YML);
    await publishRelease({
      dir: first,
      name: 'my-app',
      platform: 'gnu-linux',
      version: '0.1',
      key: keys.secret,
      passphraseFile: keys.passFile,
      to: updates,
      log: silentLogger,
    });
    hosts = await deployLaunchfitHosts(base, 2, { updatesUrl: server.url, pubAsc, fleetSecretFile: fleetSecret });
    await startLaunchfitHosts(hosts);
    for (const h of hosts)
      await waitFor(async () => (await askApp(h.appPort)) === '0.1', { what: 'app 0.1', timeoutMs: 30_000 });
    const list = writeSlaveList(
      path.join(base, 'fleet.txt'),
      hosts.map((h) => h.control),
    );

    // The site: its dist/ folder is the app; pushes build, publish and roll out.
    const repo = await makeBareRepo(path.join(base, 'git'), 'site', {
      'dist/server.cjs': readFileSync(APP_SOURCE, 'utf8'),
      'dist/version.txt': '0.1\n',
      'dist/launchify.yml': APP_YML,
    });
    const config = writePipelineConfig(path.join(base, 'shipkit.yml'), {
      data: path.join(base, 'data'),
      name: 'octo/site',
      url: repo.bare,
      steps: ['pull', 'publish', 'rollout'],
      publish: { from: 'dist', name: 'my-app', key: keys.secret, passFile: keys.passFile, to: updates },
      rollout: { list, secretFile: fleetSecret, canary: 1, waves: ['100%'], timeout: 60 },
    });
    const port = await freePort();
    const env = { HOOK_SECRET, HOOK_TOKEN: TOKEN };
    const start = () =>
      startScript('hook-server', ['--config', config, '--listen', `127.0.0.1:${port}`, '--grace', '0.5'], {
        env,
        timeoutMs: 30_000,
      });
    hook = await start();

    const sha = await repo.commit({ 'dist/version.txt': '0.2\n' });
    const delivered = await deliverGithub(
      hook.url,
      'push',
      pushPayload('octo/site', { sha, cloneUrl: repo.bare }),
      HOOK_SECRET,
    );
    assert.is(delivered.status, 202, JSON.stringify(delivered.json));
    const id = String(delivered.json.job);
    // The canary is being updated (its health check takes 1.5 s): restart hook-server now.
    await waitFor(() => hosts[0].lf!.output().includes('update requested over the control listener'), {
      what: 'the canary to be asked',
      timeoutMs: 90_000,
    });
    assert.is(await hook.stop('SIGTERM'), 0);
    assert.match(hook.output(), /job interrupted by shutdown; it runs again on the next start/);
    assert.not.ok(
      hosts[1].lf!.output().includes('update requested over the control listener'),
      'the second wave was not contacted',
    );
    // hook-server ends the job's process group (SIGTERM, SIGKILL after the grace); what matters
    // here is that the first attempt's second wave was never started.
    const firstRun = readFileSync(path.join(base, 'data/logs/octo__site/logs.txt'), 'utf8');
    assert.not.match(firstRun, /rollout: wave 1/);
    hook = await start();
    const job = await waitForJobState(hook.url, TOKEN, id, ['succeeded', 'failed', 'interrupted'], 120_000);
    assert.is(
      job.state,
      'succeeded',
      JSON.stringify(job) + readFileSync(path.join(base, 'data/logs/octo__site/logs.txt'), 'utf8'),
    );
    assert.is((await fetchJob(hook.url, TOKEN, id)).interruptions ?? 1, 1);
    for (const h of hosts)
      await waitFor(async () => (await askApp(h.appPort)) === '0.2', {
        what: 'app 0.2 on every host',
        timeoutMs: 30_000,
      });
    const log = readFileSync(path.join(base, 'data/logs/octo__site/logs.txt'), 'utf8');
    const rerun = log.slice(log.lastIndexOf('--- step pull'));
    assert.match(rerun, /publish: nothing new: dist packs to the same bytes as the published 0\.[0-9a-f]+/);
    assert.match(
      rerun,
      new RegExp(`rollout:   ok    ${hosts[0].control} 200`),
      'the canary, already current, answers 200',
    );
    assert.match(rerun, new RegExp(`rollout:   ok    ${hosts[1].control} 200`));
    assert.match(rerun, /--- step rollout ok .*2 wave\(s\), 2\/2 host\(s\) updated/);
    // One release of 0.2 on the canary: the re-run did not install it twice.
    assert.equal(readdirSync(path.join(hosts[0].deploy, 'releases')).filter((r) => r.includes('0.')).length, 2);
  } finally {
    await hook?.stop('SIGTERM');
    await stopLaunchfitHosts(hosts);
    await server.close();
  }
});

test.run();
