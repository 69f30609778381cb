// `build REPO --preview N` as a process of its own, as the preview runner starts it on the preview
// machine and a worker starts it for previews built on workers (remote-build.ts): its log is the
// preview's (DATA/previews/REPO/pr-N/logs), its answer one JSON line.
import { spawn } from 'node:child_process';
import { messageOf } from '../core/errors.ts';
import { scriptCommandFor } from '../core/script-command.ts';

export interface PreviewBuildRun {
  /** shipkit.yml of this machine. */
  configFile: string;
  repo: string;
  pr: number;
  sha: string;
  /** Where the head is fetched from (a fork's clone URL for a fork). */
  url: string;
  fromFork: boolean;
  job: string;
  /** `--preview-user`: a user name or #UID; undefined = previews.user, or this process's user. */
  user?: string;
  env?: NodeJS.ProcessEnv;
}

export interface PreviewBuildResult {
  ok: boolean;
  /** Why it failed: the build's own error, else the last line it printed. */
  error?: string;
}

/** Runs the build to its end; never throws. */
export async function runPreviewBuild(run: PreviewBuildRun): Promise<PreviewBuildResult> {
  const [command, ...prefix] = await scriptCommandFor('build', run.env);
  const args = [
    ...prefix,
    run.repo,
    '--config',
    run.configFile,
    '--preview',
    String(run.pr),
    '--sha',
    run.sha,
    '--url',
    run.url,
    '--job-id',
    run.job,
    '--json',
    ...(run.fromFork ? ['--fork'] : []),
    ...(run.user ? ['--preview-user', run.user] : []),
  ];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: run.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('error', (error) => resolve({ ok: false, error: messageOf(error) }));
    child.on('close', (code) => {
      if (code === 0) return resolve({ ok: true });
      let error = err.trim().split('\n').pop() || `exit ${code}`;
      try {
        error = (JSON.parse(out) as { error?: string }).error ?? error;
      } catch {
        // not JSON: the last line of stderr says it
      }
      resolve({ ok: false, error });
    });
  });
}
