// npm run demo -- --workers N: build workers on PostgreSQL (docs/workers.md), on loopback in a
// temp folder. A throwaway PostgreSQL (Debian's postgresql), hook-server with `queue:` and
// `concurrency: 0` (it builds nothing itself), N `shipkit worker`s each with its own folder and
// shipkit.yml, and 2×N git repos whose build (the real `build`: pull, then `npm run build`, which
// waits 2 s) is pushed at once. It prints which worker built what and when, then stops
// everything. tools/demo.ts hands `--workers` here.
import path from 'node:path';
import { deliverGithub, pushPayload } from '../test/fixtures/hooks/deliveries.ts';
import { startPostgres, type Postgres } from '../test/fixtures/postgres.ts';
import {
  queueConfig,
  SECRET,
  startHookServer,
  startWorker,
  TOKEN,
  waitForState,
  type Worker,
} from '../test/fixtures/workers.ts';
import { makeBareRepo, tmpDir, type Server } from '../test/_helpers/common.ts';
import { killProcessesUsing } from '../test/fixtures/processes.ts';

const say = (line: string) => console.log(line);
const PACKAGE = JSON.stringify({ name: 'demo', private: true, scripts: { build: 'sleep 2 && echo built' } }, null, 2);

interface World {
  pg?: Postgres;
  server?: Server;
  workers: Worker[];
  base: string;
}

async function startWorld(count: number, world: World): Promise<Record<string, { url: string; sha: string }>> {
  world.pg = await startPostgres();
  if (!world.pg)
    throw new Error('PostgreSQL is not installed (apt-get install postgresql): the workers demo needs it.');
  const repos: Record<string, { url: string; sha: string }> = {};
  for (let i = 1; i <= 2 * count; i++) {
    const bare = await makeBareRepo(path.join(world.base, 'git'), `site${i}`, {
      'package.json': PACKAGE,
      'README.md': `# site ${i}\n`,
    });
    repos[`demo/site${i}`] = { url: `file://${bare.bare}`, sha: bare.first };
  }
  const settings = Object.fromEntries(
    Object.entries(repos).map(([name, r]) => [name, { url: r.url, steps: ['pull', 'compile'] }]),
  );
  const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_QUEUE_URL: world.pg.url };
  world.server = await startHookServer(queueConfig('hook-server', settings, { concurrency: 0 }).config, env);
  say(
    `hook-server ${world.server.url} keeps its jobs in PostgreSQL on 127.0.0.1:${world.pg.port} and builds nothing itself`,
  );
  for (let i = 1; i <= count; i++) {
    world.workers.push(await startWorker(queueConfig(`worker${i}`, settings).config, `worker${i}`, env));
    say(`worker${i} takes jobs of ${Object.keys(repos).length} repos`);
  }
  return repos;
}

export async function runWorkersDemo(count: number): Promise<void> {
  const started = Date.now();
  const world: World = { workers: [], base: tmpDir('shipkit-demo-workers-') };
  say(`shipkit demo: ${count} build workers on PostgreSQL, everything in ${world.base}`);
  try {
    const repos = await startWorld(count, world);
    const server = world.server!;
    say(`\npushing ${Object.keys(repos).length} repos at once; each build pulls and runs \`npm run build\` (2 s)`);
    const t0 = Date.now();
    const sent = await Promise.all(
      Object.entries(repos).map(([name, r]) =>
        deliverGithub(server.url, 'push', pushPayload(name, { sha: r.sha, cloneUrl: r.url }), SECRET),
      ),
    );
    const jobs = await Promise.all(
      sent.map((res) => waitForState(server, res.json.job, ['succeeded', 'failed'], 120_000)),
    );
    const rel = (iso: string) => `+${String(Date.parse(iso) - t0).padStart(6)} ms`;
    say('\n  repo         worker     started      finished     state');
    for (const job of [...jobs].sort((a, b) => Date.parse(a.started) - Date.parse(b.started))) {
      say(
        `  ${job.repo.padEnd(12)} ${String(job.worker).padEnd(10)} ${rel(job.started)}  ${rel(job.finished)}  ${job.state}`,
      );
    }
    const wall = (Math.max(...jobs.map((j) => Date.parse(j.finished))) - t0) / 1000;
    const busy = jobs.reduce((sum, j) => sum + (Date.parse(j.finished) - Date.parse(j.started)) / 1000, 0);
    const used = new Set(jobs.map((j) => j.worker)).size;
    say(
      `\n${jobs.length} builds in ${wall.toFixed(1)} s on ${used} workers (${busy.toFixed(1)} s of building: one worker alone would take about that)`,
    );
    if (jobs.some((j) => j.state !== 'succeeded'))
      throw new Error(`not every build succeeded:\n${server.output().slice(-2000)}`);
  } finally {
    for (const w of world.workers) await w.stop();
    await world.server?.stop();
    await world.pg?.stop();
    await killProcessesUsing(world.base);
    say(`demo done in ${((Date.now() - started) / 1000).toFixed(1)} s; everything it started is stopped`);
  }
}
