// Shared by the install tests (npm package, one-file bundle, Debian package): a PATH that holds
// only node and git, and the end-to-end check each install must pass — a signed GitHub push to
// hook-server builds a litpro repo (clone, litpro compile) through the installed programs.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { $ } from '../../lib/core/shell.ts';
import { deliverGithub, pushPayload, waitForJobState, writeConfig } from '../fixtures/hooks/deliveries.ts';
import { fixtureFiles } from './build.ts';
import { makeBareRepo, tmpDir } from './common.ts';

/**
 * A folder holding only `node` (this one, or `node`), `git` and the shell zx runs commands with
 * (bash, sh), to be the whole PATH: no npm, npx, tsx or litpro to fall back on.
 */
export async function nodeGitAndShellOnly(node = process.execPath): Promise<string> {
  const dir = path.join(tmpDir('shipkit-path-'), 'bin');
  mkdirSync(dir);
  symlinkSync(node, path.join(dir, 'node'));
  for (const tool of ['git', 'bash', 'sh'])
    symlinkSync((await $`command -v ${tool}`).stdout.trim(), path.join(dir, tool));
  return dir;
}

export interface Started {
  url: string;
  output: () => string;
  stop: () => Promise<number | null>;
}

/** Start a hook-server command line (env given whole, nothing inherited) until it listens. */
export async function startListening(
  argv: string[],
  { cwd, env }: { cwd: string; env: Record<string, string> },
): Promise<Started> {
  const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  process.on('exit', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not start in time:\n${out}`)), 30_000);
    const check = () => {
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited with ${code}:\n${out}`));
    });
  });
  return {
    url,
    output: () => out,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * What a browser gets from an installed hook-server's status page (its CSS and script are built
 * into the program, not read from the checkout): the login form, a session from the right token,
 * the job page, both assets, and the finished job's log as an event stream.
 */
async function visitStatusPage(url: string, token: string, jobId: string) {
  const login = await fetch(`${url}/`, { headers: { Accept: 'text/html' } });
  const signedIn = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: url },
    body: new URLSearchParams({ token }),
  });
  const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0];
  const get = (route: string, accept = 'text/html') =>
    fetch(`${url}${route}`, { headers: { Accept: accept, Cookie: cookie } });
  const jobPage = await get(`/jobs/${jobId}`);
  const css = await get('/assets/shipkit.css', 'text/css');
  const script = await get('/assets/log-follow.js', '*/*');
  const follow = await get(`/jobs/${jobId}/log?follow=1`, 'text/event-stream');
  return {
    login: { status: login.status, html: await login.text() },
    signedIn: { status: signedIn.status, cookie },
    jobPage: { status: jobPage.status, html: await jobPage.text() },
    css: { status: css.status, type: css.headers.get('content-type'), bytes: (await css.text()).length },
    script: { status: script.status, type: script.headers.get('content-type'), bytes: (await script.text()).length },
    follow: { status: follow.status, type: follow.headers.get('content-type'), text: await follow.text() },
  };
}

/** The status page answered as it does from a checkout. */
export function assertStatusPage(pages: Awaited<ReturnType<typeof visitStatusPage>>, jobId: string): void {
  const problems: string[] = [];
  if (pages.login.status !== 401 || !/<form[^>]+action="\/login"/.test(pages.login.html))
    problems.push(`GET / without a session: ${pages.login.status}, no login form`);
  if (pages.signedIn.status !== 303 || !pages.signedIn.cookie.startsWith('shipkit_session='))
    problems.push(`POST /login: ${pages.signedIn.status} ${pages.signedIn.cookie}`);
  if (pages.jobPage.status !== 200 || !pages.jobPage.html.includes(jobId) || !pages.jobPage.html.includes('succeeded'))
    problems.push(`job page: ${pages.jobPage.status}`);
  if (pages.css.status !== 200 || !pages.css.type?.startsWith('text/css') || pages.css.bytes < 100)
    problems.push(`shipkit.css: ${pages.css.status} ${pages.css.type} ${pages.css.bytes} B`);
  if (pages.script.status !== 200 || !pages.script.type?.startsWith('text/javascript') || pages.script.bytes < 100)
    problems.push(`log-follow.js: ${pages.script.status} ${pages.script.type} ${pages.script.bytes} B`);
  if (
    pages.follow.status !== 200 ||
    !pages.follow.type?.startsWith('text/event-stream') ||
    !/event: end\ndata: \{"state":"succeeded"/.test(pages.follow.text)
  )
    problems.push(`follow: ${pages.follow.status} ${pages.follow.type} ${pages.follow.text.slice(-200)}`);
  if (problems.length) throw new Error(`the installed status page: ${problems.join('; ')}`);
}

/**
 * A signed push of a litpro repo to the hook-server that `argv` starts (in `cwd`, with PATH =
 * `pathDirs`): returns the finished job and the compiled page.
 */
export async function buildLitproThroughHookServer(
  argv: string[],
  { cwd, path: pathDirs, env = {} }: { cwd: string; path: string; env?: Record<string, string> },
) {
  const base = tmpDir('shipkit-install-');
  const repo = await makeBareRepo(path.join(base, 'git'), 'site', fixtureFiles('litpro-site'));
  const config = writeConfig(base, { repos: { 'octo/site': { url: repo.bare } } });
  const secret = `secret-${randomUUID()}`;
  const token = `token-${randomUUID()}`;
  const server = await startListening([...argv, '--config', config, '--listen', '127.0.0.1:0'], {
    cwd,
    env: { PATH: pathDirs, HOME: base, HOOK_SECRET: secret, HOOK_TOKEN: token, NO_COLOR: '1', ...env },
  });
  try {
    const delivery = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: repo.first, cloneUrl: repo.bare }),
      secret,
    );
    if (delivery.status !== 202)
      throw new Error(`hook-server answered ${delivery.status}: ${JSON.stringify(delivery.json)}\n${server.output()}`);
    const job = await waitForJobState(server.url, token, delivery.json.job, ['succeeded', 'failed'], 120_000);
    const log = await (
      await fetch(`${server.url}/jobs/${job.id}/log`, { headers: { Authorization: `Bearer ${token}` } })
    ).text();
    let html = '';
    try {
      html = readFileSync(path.join(base, 'data', 'repos', 'octo__site', 'out', 'index.html'), 'utf8');
    } catch {
      /* checked by the caller */
    }
    return { job, log, html, pages: await visitStatusPage(server.url, token, job.id), output: server.output };
  } finally {
    const code = await server.stop();
    if (code !== 0) throw new Error(`hook-server exited with ${code} on SIGTERM:\n${server.output()}`);
  }
}
