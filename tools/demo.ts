// npm run demo [-- --hosts N]: the whole pipeline on loopback, in a temp folder. A bare git repo
// whose post-receive hook delivers signed pushes to hook-server; builds that publish a signed
// launchfit release to an update server (a folder over HTTP) and roll it out, canary first, to N
// launchfit hosts running a tiny zero-downtime app. It pushes a change and prints the timeline,
// then pushes a release whose app fails its health check: the canary rolls itself back and the
// rollout halts with the other hosts untouched. Everything it started is stopped at the end, on
// Ctrl-C and on errors.
import { readlinkSync, rmSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { askApp } from '../test/fixtures/launchfit/world.ts';
import {
  fetchJob,
  startPipelineWorld,
  stepTimes,
  timedLines,
  type PipelineWorld,
  type Pushed,
} from '../test/fixtures/pipeline-world.ts';
import { tmpDir } from '../test/_helpers/common.ts';
import { describeProcesses, killProcessesUsing } from '../test/fixtures/processes.ts';

const args = minimist(process.argv.slice(2), {
  string: ['hosts', 'workers', 'nodes'],
  boolean: ['help', 'previews', 'environments'],
});
if (args.help) {
  console.log('usage: npm run demo [-- --hosts N]   (N launchfit hosts on 127.0.0.1, default 5)');
  console.log('       npm run demo -- --workers N   (N build workers on PostgreSQL, tools/demo-workers.ts)');
  console.log(
    '       npm run demo -- --nodes N     (N hook-servers on one PostgreSQL behind haproxy, tools/demo-ha.ts)',
  );
  console.log(
    '       npm run demo -- --previews    (a preview per pull request through nginx, tools/demo-previews.ts)',
  );
  console.log('       npm run demo -- --environments (staging → approval → production, tools/demo-environments.ts)');
  process.exit(0);
}
if (args.previews) {
  const { nginxInstalled, runPreviewsDemo, DEMO_NGINX } = await import('./demo-previews.ts');
  if (!nginxInstalled()) {
    console.error(`error: no nginx at ${DEMO_NGINX}: install Debian's nginx package (apt-get install nginx).`);
    process.exit(2);
  }
  await runPreviewsDemo().then(
    () => process.exit(0),
    (error: Error) => {
      console.error(`demo failed: ${error.message}`);
      process.exit(1);
    },
  );
}
if (args.environments) {
  const { runEnvironmentsDemo } = await import('./demo-environments.ts');
  await runEnvironmentsDemo().then(
    () => process.exit(0),
    (error: Error) => {
      console.error(`demo failed: ${error.message}`);
      process.exit(1);
    },
  );
}
if (args.nodes !== undefined) {
  const nodes = Number(args.nodes);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 5) {
    console.error('error: --nodes must be a whole number from 2 to 5.');
    process.exit(2);
  }
  const { runHaDemo } = await import('./demo-ha.ts');
  await runHaDemo(nodes).then(
    () => process.exit(0),
    (error: Error) => {
      console.error(`demo failed: ${error.message}`);
      process.exit(1);
    },
  );
}
if (args.workers !== undefined) {
  const workers = Number(args.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 8) {
    console.error('error: --workers must be a whole number from 1 to 8.');
    process.exit(2);
  }
  const { runWorkersDemo } = await import('./demo-workers.ts');
  await runWorkersDemo(workers).then(
    () => process.exit(0),
    (error: Error) => {
      console.error(`demo failed: ${error.message}`);
      process.exit(1);
    },
  );
}
const count = Number(args.hosts ?? 5);
if (!Number.isInteger(count) || count < 2 || count > 50) {
  console.error('error: --hosts must be a whole number from 2 to 50 (one canary and at least one more host).');
  process.exit(2);
}

const started = Date.now();
const say = (line: string) => console.log(line);
const ms = (t: number, t0: number) => `+${String(t - t0).padStart(6)} ms`;
let base: string | undefined;
let world: PipelineWorld | undefined;
let stopping: Promise<void> | undefined;
let interrupted = false;

/**
 * Stop the world in order (hook-server lets its job end, launchfit stops its app), then make sure:
 * whatever still runs in the demo's folder (a `git push` and its hook caught mid-way, a job's
 * own process group, an app in its own session) is killed, and the folder removed.
 */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 20_000);
    });
    await Promise.race([world?.stop().catch(() => {}), late]);
    clearTimeout(timer);
    if (!base) return;
    const survivors = await killProcessesUsing(base);
    if (survivors.length) console.error(`could not stop these processes of the demo:\n${describeProcesses(survivors)}`);
    rmSync(base, { recursive: true, force: true });
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true;
    console.log(`\n${signal}: stopping everything the demo started`);
    void stopAll().finally(() => process.exit(130));
  });
}

/** How long after its job the demo waits for every host to answer the new version. */
const LIVE_GRACE_MS = 10_000;

/** The app's answer on a host ("VERSION PID listen"): its version. */
async function versionOn(port: number): Promise<string | undefined> {
  return (await askApp(port, 1000))?.split(' ')[0];
}

const releaseOf = (deploy: string) =>
  path.basename(readlinkSync(path.join(deploy, 'current'))).replace(/^my-app-gnu-linux-/, '');

/** Polls every host's app until each answers `version`; the time each first did. */
async function watchHosts(w: PipelineWorld, version: string, until: Promise<unknown>): Promise<Map<string, number>> {
  const live = new Map<string, number>();
  let done = false;
  until.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  ); // its failure is the caller's to report
  while (live.size < w.hosts.length && !done) {
    await Promise.all(
      w.hosts
        .filter((h) => !live.has(h.name))
        .map(async (h) => {
          if ((await versionOn(h.appPort)) === version) live.set(h.name, Date.now());
        }),
    );
    await new Promise((r) => setTimeout(r, 25));
  }
  return live;
}

async function timeline(w: PipelineWorld, pushed: Pushed, version: string | undefined) {
  const finished = w.waitForJob(pushed.job);
  // The watch ends once every host answers, or LIVE_GRACE_MS after the job: a host's new app may
  // take the last connections a moment after the rollout counted it, longer on a busy machine.
  const live = version
    ? watchHosts(
        w,
        version,
        finished.then(() => new Promise((r) => setTimeout(r, LIVE_GRACE_MS))),
      )
    : Promise.resolve(new Map<string, number>());
  const job = await finished;
  const lines = timedLines(await w.jobLog(pushed.job), job.started ?? job.queued);
  const steps = stepTimes(lines);
  const { t0 } = pushed;
  say(`  ${ms(pushed.accepted, t0)}  push accepted: hook-server queued job ${pushed.job}`);
  const built = steps.get('compile')?.end ?? steps.get('publish')?.start;
  if (built) say(`  ${ms(built, t0)}  build done (pull, install, compile)`);
  const publish = steps.get('publish');
  const publishedLine = lines.find((l) => l.text.startsWith('publish: published '));
  if (publish?.end && publishedLine)
    say(`  ${ms(publish.end, t0)}  published ${publishedLine.text.replace(/^publish: published (\S+).*/, '$1')}`);
  return { job, lines, live: await live, t0 };
}

async function main() {
  base = tmpDir('shipkit-demo-');
  say(`shipkit demo: ${count} launchfit hosts on 127.0.0.1, everything in ${base}`);
  world = await startPipelineWorld(base, {
    hosts: count,
    canary: 1,
    waves: ['100%'],
    progress: (line) => say(`  ${line}`),
  });
  const w = world;
  const canary = w.hosts[0];
  say(
    `ready in ${((Date.now() - started) / 1000).toFixed(1)} s; every host serves app version 1 (release 1.0.0); ${canary.name} is the canary\n`,
  );

  say('1. git push: app version 2');
  await w.commit({ 'version.txt': '2\n' }, 'version 2');
  const good = await timeline(w, await w.push(), '2');
  const canaryLive = good.live.get(canary.name);
  if (canaryLive) say(`  ${ms(canaryLive, good.t0)}  canary live: ${canary.name} answers 2`);
  const last = Math.max(...good.live.values());
  if (good.live.size === w.hosts.length)
    say(`  ${ms(last, good.t0)}  every host live: ${w.hosts.length}/${w.hosts.length} answer 2`);
  if (good.job.state !== 'succeeded' || good.live.size !== w.hosts.length) {
    throw new Error(
      `the rollout of version 2 did not reach every host (job ${good.job.state}, ${good.live.size}/${w.hosts.length} live):\n${good.lines.map((l) => l.text).join('\n')}`,
    );
  }
  const released = releaseOf(canary.deploy);

  say('\n2. git push: app version 3, which answers 500 to everything (its health check too)');
  await w.commit({ 'version.txt': '3\n', fail500: 'broken on purpose\n' }, 'version 3 (broken)');
  const bad = await timeline(w, await w.push(), undefined);
  const fail = bad.lines.find((l) => /^rollout: {3}FAIL/.test(l.text));
  const why = canary
    .lf!.output()
    .split('\n')
    .find((l) => l.includes('did not answer its health check'));
  if (fail)
    say(
      `  ${ms(fail.at, bad.t0)}  canary rolled back: ${why ? why.replace(/^.*?(the new release)/, '$1').replace(/; rolling back.*$/, '') : fail.text.replace(/^rollout: {3}FAIL\s+/, '')}`,
    );
  const halted = await fetchJob(w.hook.url, w.token, bad.job.id);
  const end = bad.lines.find((l) => l.text.startsWith('!!! step rollout failed'));
  say(
    `  ${ms(end?.at ?? Date.parse(halted.finished), bad.t0)}  rollout halted: job ${halted.state}${end ? `: ${end.text.replace(/^!!! step rollout failed after [\d.]+ s: /, '')}` : ''}`,
  );
  say('\n  host      release             app answers  asked by the rollout');
  let untouched = 0;
  for (const h of w.hosts) {
    const asked = h.lf!.output().split('update requested over the control listener').length - 1;
    if (h !== canary && asked === 1) untouched++;
    say(
      `  ${h.name.padEnd(8)}  ${releaseOf(h.deploy).padEnd(18)}  ${String(await versionOn(h.appPort)).padEnd(11)}  ${h === canary ? 'yes (canary): rolled back' : asked > 1 ? 'yes' : 'no'}`,
    );
  }
  const allOnTwo =
    (await Promise.all(w.hosts.map((h) => versionOn(h.appPort)))).every((v) => v === '2') &&
    w.hosts.every((h) => releaseOf(h.deploy) === released);
  if (halted.state !== 'failed' || !allOnTwo || untouched !== w.hosts.length - 1)
    throw new Error('the broken release was not stopped at the canary');
  say(`\nevery host still serves version 2 (${released}); ${untouched} host(s) never asked about version 3`);
}

try {
  await main();
  await stopAll();
  say(`demo done in ${((Date.now() - started) / 1000).toFixed(1)} s; everything it started is stopped`);
  process.exit(0);
} catch (error) {
  if (interrupted) await new Promise(() => {}); // the signal handler exits once everything is stopped
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  if (world) console.error(`hook-server output:\n${world.hook.output().slice(-3000)}`);
  await stopAll();
  process.exit(1);
}
