// Shared set-up for the build, logs, release and post-receive tests: a bare repo made from a
// fixture folder, a shipkit.yml pointing at it, and the scripts run for real.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeBareRepo, runScript, tmpDir, type RunResult } from './common.ts';

export const FIXTURES = path.join(import.meta.dirname, '../fixtures', 'build');

/** Every file under test/fixtures/build/NAME as a path → text map. */
export function fixtureFiles(name: string): Record<string, string> {
  const root = path.join(FIXTURES, name);
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else files[path.relative(root, full)] = readFileSync(full, 'utf8');
    }
  };
  walk(root);
  return files;
}

export interface Site {
  base: string;
  data: string;
  config: string;
  bare: string;
  first: string;
  commit: (files: Record<string, string>, message?: string) => Promise<string>;
  work: string;
  /** DATA/repos/octo__site, DATA/logs/octo__site */
  repoDir: string;
  logsDir: string;
  logText: () => string;
  run: (script: string, args: string[], env?: Record<string, string | undefined>) => Promise<RunResult>;
  writeConfig: (repoYaml?: string, topYaml?: string) => void;
}

/** A bare repo `site.git` with `files`, and a shipkit.yml with repo octo/site pointing at it. */
export async function makeSite(files: Record<string, string>, repoYaml = '', topYaml = ''): Promise<Site> {
  const base = tmpDir('shipkit-build-');
  const repo = await makeBareRepo(path.join(base, 'git'), 'site', files);
  const data = path.join(base, 'data');
  const config = path.join(base, 'shipkit.yml');
  const writeConfig = (more = repoYaml, top = topYaml) =>
    writeFileSync(
      config,
      [
        `data: ${data}`,
        top,
        'repos:',
        '  octo/site:',
        `    url: ${repo.bare}`,
        ...(/^timeout:/m.test(more) ? [] : ['    timeout: 120']),
        ...more
          .split('\n')
          .filter(Boolean)
          .map((l) => `    ${l}`),
        '',
      ]
        .filter((l) => l !== '')
        .join('\n') + '\n',
    );
  writeConfig();
  const logsDir = path.join(data, 'logs', 'octo__site');
  return {
    base,
    data,
    config,
    bare: repo.bare,
    first: repo.first,
    commit: repo.commit,
    work: repo.work,
    repoDir: path.join(data, 'repos', 'octo__site'),
    logsDir,
    logText: () => readFileSync(path.join(logsDir, 'logs.txt'), 'utf8'),
    run: (script, args, env) => runScript(script, [...args, '--config', config], { env, timeoutMs: 120_000 }),
    writeConfig,
  };
}

export function lastJson(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

/** `fn` over `items`, at most `limit` at a time (cases that write nothing run side by side). */
export { mapLimit } from '../../lib/core/pool.ts';
