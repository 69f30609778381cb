// Shared by the install tests (npm package, one-file bundle, Debian package): a PATH that holds
// only node and git, and the end-to-end check each install must pass — a signed GitHub push to
// hook-server builds a litpro repo (clone, litpro compile) through the installed programs.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { $ } from 'zx';
import { deliverGithub, pushPayload, waitForJobState, writeConfig } from './fixtures/hooks/deliveries.ts';
import { fixtureFiles } from './build-helpers.ts';
import { makeBareRepo, tmpDir } from './helpers.ts';

/**
 * A folder holding only `node` (this one, or `node`), `git` and the shell zx runs commands with
 * (bash, sh), to be the whole PATH: no npm, npx, tsx or litpro to fall back on.
 */
export async function nodeGitAndShellOnly(node = process.execPath): Promise<string> {
  const dir = path.join(tmpDir('shipkit-path-'), 'bin');
  mkdirSync(dir);
  symlinkSync(node, path.join(dir, 'node'));
  for (const tool of ['git', 'bash', 'sh']) symlinkSync((await $`command -v ${tool}`).stdout.trim(), path.join(dir, tool));
  return dir;
}

export interface Started {
  url: string;
  output: () => string;
  stop: () => Promise<number | null>;
}

/** Start a hook-server command line (env given whole, nothing inherited) until it listens. */
export async function startListening(argv: string[], { cwd, env }: { cwd: string; env: Record<string, string> }): Promise<Started> {
  const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not start in time:\n${out}`)), 30_000);
    const check = () => {
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${argv.join(' ')} exited with ${code}:\n${out}`)); });
  });
  return { url, output: () => out, stop: () => { child.kill('SIGTERM'); return exited; } };
}

/**
 * A signed push of a litpro repo to the hook-server that `argv` starts (in `cwd`, with PATH =
 * `pathDirs`): returns the finished job and the compiled page.
 */
export async function buildLitproThroughHookServer(argv: string[], { cwd, path: pathDirs, env = {} }: { cwd: string; path: string; env?: Record<string, string> }) {
  const base = tmpDir('shipkit-install-');
  const repo = await makeBareRepo(path.join(base, 'git'), 'site', fixtureFiles('litpro-site'));
  const config = writeConfig(base, { repos: { 'octo/site': { url: repo.bare } } });
  const secret = `secret-${randomUUID()}`;
  const token = `token-${randomUUID()}`;
  const server = await startListening([...argv, '--config', config, '--listen', '127.0.0.1:0'], {
    cwd, env: { PATH: pathDirs, HOME: base, HOOK_SECRET: secret, HOOK_TOKEN: token, NO_COLOR: '1', ...env },
  });
  try {
    const delivery = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: repo.first, cloneUrl: repo.bare }), secret);
    if (delivery.status !== 202) throw new Error(`hook-server answered ${delivery.status}: ${JSON.stringify(delivery.json)}\n${server.output()}`);
    const job = await waitForJobState(server.url, token, delivery.json.job, ['succeeded', 'failed'], 120_000);
    const log = await (await fetch(`${server.url}/jobs/${job.id}/log`, { headers: { Authorization: `Bearer ${token}` } })).text();
    let html = '';
    try { html = readFileSync(path.join(base, 'data', 'repos', 'octo__site', 'out', 'index.html'), 'utf8'); } catch { /* checked by the caller */ }
    return { job, log, html, output: server.output };
  } finally {
    const code = await server.stop();
    if (code !== 0) throw new Error(`hook-server exited with ${code} on SIGTERM:\n${server.output()}`);
  }
}
