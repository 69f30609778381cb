// What `launchfit status` shows: current/previous release, versions, app state, last check.
import { readdir } from 'node:fs/promises';
import type { AppInfo } from './supervisor.ts';
import { readState, type DeployPaths } from './state.ts';
import { readCurrent } from './switch.ts';

export interface Status {
  dir: string;
  current?: string;
  version?: string;
  previous?: string;
  highest?: string;
  bad: string[];
  releases: Array<{ name: string; version?: string; installedAt?: string; current: boolean }>;
  lastCheck?: { at: string; ok: boolean; message: string };
  pending?: { from?: string; to: string; at: string };
  running: boolean;
  app?: AppInfo;
}

export async function collectStatus(paths: DeployPaths, app?: AppInfo): Promise<Status> {
  const state = await readState(paths);
  const current = await readCurrent(paths);
  let names: string[] = [];
  try { names = (await readdir(paths.releases)).filter((n) => !n.startsWith('.')).sort(); } catch { /* none */ }
  return {
    dir: paths.dir,
    current,
    version: current ? state.installed[current]?.version : undefined,
    previous: state.previous,
    highest: state.highest,
    bad: state.bad,
    releases: names.map((name) => ({ name, version: state.installed[name]?.version, installedAt: state.installed[name]?.installedAt, current: name === current })),
    lastCheck: state.lastCheck,
    pending: state.pending,
    running: Boolean(app),
    app,
  };
}

export function formatStatus(s: Status): string {
  const lines = [
    `dir:      ${s.dir}`,
    `current:  ${s.current ?? '(none)'}${s.version ? ` (version ${s.version})` : ''}`,
    `previous: ${s.previous ?? '(none)'}`,
    `highest:  ${s.highest ?? '(none)'}`,
  ];
  if (s.bad.length) lines.push(`bad:      ${s.bad.join(', ')}`);
  lines.push(`app:      ${s.app ? `${s.app.state}${s.app.pid ? ` pid ${s.app.pid}` : ''}${s.app.restarts ? `, ${s.app.restarts} restarts` : ''}` : 'launchfit run is not active'}`);
  if (s.lastCheck) lines.push(`checked:  ${s.lastCheck.at} ${s.lastCheck.ok ? 'ok' : 'FAILED'}: ${s.lastCheck.message}`);
  lines.push('releases:');
  for (const r of s.releases) lines.push(`  ${r.current ? '*' : ' '} ${r.name}${r.version ? `  ${r.version}` : ''}${r.installedAt ? `  ${r.installedAt}` : ''}`);
  return `${lines.join('\n')}\n`;
}
