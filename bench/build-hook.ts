// `bench/build.ts --only hook`: a no-op rebuild through hook-server as shipped (bench/shipped.ts)
// against webhook 2.8 running a shell script that does the same work. A repo is built once; then
// each round pushes an empty commit to the bare repo and delivers the signed push, timed from the
// POST to the job's end: webhook's answer, given when the script ends; the end hook-server's job
// record says (`finished`, this machine's clock, read by polling `GET /jobs/ID` every 20 ms). Not
// the moment a poll sees it: polling every 2 ms, as this bench did to 26 Nov, kept both cores busy
// with requests while the decision's git fetch ran, and slowed it by ~25 ms. The script: git
// fetch, compare origin/main^{tree} with the built tree.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { $ } from '../lib/core/shell.ts';
import { deliverGithub, pushPayload } from '../test/fixtures/hooks/deliveries.ts';
import { freePort, git, makeBareRepo, waitFor } from '../test/_helpers/common.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const SECRET = `bench-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const GOAL = 1.1;

// The peer's work, as an operator would write it for webhook: fetch as the pull step does, then
// compare the pushed branch's tree with the one last built.
const PEER_SCRIPT = `#!/bin/sh
set -e
cd "$(dirname "$0")/clone"
git fetch --quiet --force --prune --tags origin '+refs/heads/*:refs/remotes/origin/*'
if [ "$(git rev-parse 'origin/main^{tree}')" = "$(cat ../built-tree)" ]; then echo up-to-date; else echo build; fi
`;

export async function benchHook({ base, runs }: { base: string; runs: number }): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v webhook']).status !== 0) {
    console.log('webhook is not installed (apt-get install webhook): the hook no-op bench needs it as its peer.');
    return;
  }
  const root = path.join(base, 'hook');
  const repo = await makeBareRepo(path.join(root, 'git'), 'site', { 'index.html': '<h1>hi</h1>\n' });
  const children: ChildProcess[] = [];
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  const hook = await startShipped(root, repo.bare, children);
  const peer = await startPeer(root, repo.bare, children);
  let sha = repo.first;
  const emptyCommit = async () => {
    await git(repo.work, 'commit', '--quiet', '--allow-empty', '-m', 'nothing');
    await git(repo.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
    sha = (await git(repo.work, 'rev-parse', 'HEAD')).stdout.trim();
  };
  const first = await hook.deliver(sha);
  if (first.state !== 'succeeded') throw new Error(`the first build failed: ${JSON.stringify(first)}`);
  const samples = { 'hook-server': [] as number[], webhook: [] as number[] };
  const once = async (side: 'hook-server' | 'webhook') => {
    await emptyCommit();
    if (side === 'webhook') {
      const t0 = performance.now();
      const { answer } = await peer.deliver(sha);
      const ms = performance.now() - t0;
      if (answer !== 'up-to-date') throw new Error(`webhook did not find ${sha} up to date`);
      return ms;
    }
    const posted = Date.now();
    const job = await hook.deliver(sha);
    if (!/^up-to-date:/.test(String(job.reason))) throw new Error(`hook-server did not find ${sha} up to date`);
    return Date.parse(String(job.finished)) - posted;
  };
  // Warm-up, both sides, not counted.
  await once('hook-server');
  await once('webhook');
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? (['hook-server', 'webhook'] as const) : (['webhook', 'hook-server'] as const);
    for (const side of order) samples[side].push(await once(side));
  }
  const ours = median(samples['hook-server']);
  const theirs = median(samples.webhook);
  const ratio = ours / theirs;
  const load = loadAverage();
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} ms`;
  console.log(
    `\nno-op rebuild through a webhook, ${runs} runs each, sides alternated (load ${load}):\n` +
      `  hook-server (as shipped, POST → the job's recorded end, up to date): median ${ours.toFixed(1)} ms (${range(samples['hook-server'])})\n` +
      `  webhook 2.8 + sh (POST → git fetch + tree compare): median ${theirs.toFixed(1)} ms (${range(samples.webhook)})\n` +
      `  ratio ${ratio.toFixed(2)}× (goal ≤ ${GOAL}×: ${ratio <= GOAL ? 'met' : 'not met'})`,
  );
  reportResult({
    work: 'no-op rebuild via webhook (POST → job end)',
    shipkit: Number(ours.toFixed(1)),
    peer: Number(theirs.toFixed(1)),
    unit: 'ms',
    goal: `≤ ${GOAL}×`,
    met: ratio <= GOAL,
    load,
    note: `${runs} runs each, alternated; peer: webhook 2.8 running sh (git fetch + rev-parse tree compare)`,
  });
  for (const child of children) child.kill('SIGTERM');
}

/** hook-server as shipped, with the repo built once; `deliver` posts a push and waits for its job's end. */
async function startShipped(root: string, bare: string, children: ChildProcess[]) {
  const port = await freePort();
  const config = path.join(root, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `data: ${path.join(root, 'data')}`,
      'secret: env:BENCH_SECRET',
      'token: env:BENCH_TOKEN',
      'repos:',
      '  octo/site:',
      `    url: ${bare}`,
      '    steps: [pull, compile]',
      '    compile: "true"',
      '',
    ].join('\n'),
  );
  const [cmd, ...argv] = shippedArgv('hook-server');
  const child = spawn(cmd, [...argv, '--config', config], {
    env: { ...process.env, BENCH_SECRET: SECRET, BENCH_TOKEN: TOKEN, NO_COLOR: '1' },
    stdio: 'ignore',
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, {
    what: 'hook-server',
    timeoutMs: 30_000,
  });
  const headers = { Authorization: `Bearer ${TOKEN}` };
  return {
    async deliver(sha: string): Promise<{ state: string; reason: string | null; finished: string | null }> {
      const payload = pushPayload('octo/site', { sha, cloneUrl: bare });
      const answer = await deliverGithub(url, 'push', payload, SECRET);
      if (answer.status !== 202)
        throw new Error(`hook-server answered ${answer.status}: ${JSON.stringify(answer.json)}`);
      const id = String(answer.json.job);
      for (;;) {
        const job = await (await fetch(`${url}/jobs/${id}`, { headers })).json();
        if (!['queued', 'running'].includes(job.state)) return job;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

/** webhook 2.8 running PEER_SCRIPT (its answer waits for the script), with a clone whose tree is "built". */
async function startPeer(root: string, bare: string, children: ChildProcess[]) {
  const dir = path.join(root, 'peer');
  await $`mkdir -p ${dir}`;
  await git(dir, 'clone', '--quiet', bare, 'clone');
  writeFileSync(
    path.join(dir, 'built-tree'),
    `${(await git(path.join(dir, 'clone'), 'rev-parse', 'HEAD^{tree}')).stdout.trim()}\n`,
  );
  const script = path.join(dir, 'noop.sh');
  writeFileSync(script, PEER_SCRIPT);
  chmodSync(script, 0o755);
  const hooks = path.join(dir, 'hooks.json');
  writeFileSync(
    hooks,
    JSON.stringify([
      {
        id: 'site',
        'execute-command': script,
        'command-working-directory': dir,
        'include-command-output-in-response': true,
        'trigger-rule': {
          match: {
            type: 'payload-hmac-sha256',
            secret: SECRET,
            parameter: { source: 'header', name: 'X-Hub-Signature-256' },
          },
        },
      },
    ]),
  );
  const port = await freePort();
  const child = spawn('webhook', ['-hooks', hooks, '-ip', '127.0.0.1', '-port', String(port)], { stdio: 'ignore' });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/`).catch(() => undefined)) !== undefined, { what: 'webhook' });
  return {
    async deliver(sha: string): Promise<{ answer: string }> {
      const payload = pushPayload('octo/site', { sha, cloneUrl: bare });
      const answer = await deliverGithub(url, 'push', payload, SECRET, { path: '/hooks/site' });
      if (answer.status !== 200) throw new Error(`webhook answered ${answer.status}: ${JSON.stringify(answer.json)}`);
      return { answer: String(answer.json).trim() };
    },
  };
}
