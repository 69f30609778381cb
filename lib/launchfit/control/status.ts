// What `launchfit status` shows: current/previous release, versions, app state, last check.
import { readFile, readdir } from 'node:fs/promises';
import { hostIdFile } from '../deploy-folder/host-id.ts';
import { readLastReport, type LastReport } from './report.ts';
import { HOST_ID_PATTERN, rolloutBucket } from '../../release/format/bucket.ts';
import type { InstanceInfo, RunnerInfo } from '../app/runner.ts';
import type { HostBinding } from '../deploy-folder/state.ts';
import { readState, type DeployPaths, type LaunchState } from '../deploy-folder/state.ts';
import { readCurrent } from '../deploy-folder/current-link.ts';

export interface Status {
  dir: string;
  current?: string;
  version?: string;
  previous?: string;
  highest?: string;
  /** The highest SEQ accepted (docs/release.md): a VERSION with a lower one is refused. */
  seq?: number;
  /** The APP and PLATFORM this folder is bound to (or their APP-PLATFORM prefix). */
  binding?: HostBinding;
  /** EXPIRES of the VERSION last handled: after it, a 304 is a failed check. */
  versionExpires?: string;
  bad: string[];
  releases: Array<{ name: string; version?: string; installedAt?: string; current: boolean }>;
  lastCheck?: { at: string; ok: boolean; message: string };
  /** The host id (pull rollouts, docs/fleet.md), once made. */
  hostId?: string;
  /** A VERSION offered with a ROLLOUT this host is not in yet: its bucket for that version. */
  waiting?: LaunchState['waiting'];
  /** This host's rollout bucket for the version offered (the one waited for, else the current one). */
  bucket?: { version: string; bucket: number };
  /** The last report sent to updates.report, and how it went. */
  lastReport?: LastReport;
  pending?: { from?: string; to: string; at: string };
  running: boolean;
  /** The serving app and the release folder it runs in (what serves, whatever `current` says). */
  app?: InstanceInfo;
  /** Every app process launchfit runs (two while an update overlaps them). */
  instances?: InstanceInfo[];
  /** app.listen, as bound by `launchfit run`. */
  sockets?: string[];
  health?: RunnerInfo['health'];
  lastFailure?: LaunchState['lastFailure'];
  /** The last install and its way: `reuse` (a kept folder, nothing fetched) or `full`, with bytes fetched. */
  lastInstall?: LaunchState['lastInstall'];
}

export async function collectStatus(paths: DeployPaths, live?: RunnerInfo): Promise<Status> {
  const state = await readState(paths);
  const current = await readCurrent(paths);
  const hostId = await readFile(hostIdFile(paths), 'utf8').then(
    (t) => t.trim(),
    () => undefined,
  );
  let names: string[] = [];
  try {
    names = (await readdir(paths.releases)).filter((n) => !n.startsWith('.')).sort();
  } catch {
    /* none */
  }
  return {
    dir: paths.dir,
    current,
    version: current ? state.installed[current]?.version : undefined,
    previous: state.previous,
    highest: state.highest,
    seq: state.seq?.seq,
    binding: state.binding,
    versionExpires: state.versionExpires,
    bad: state.bad,
    releases: names.map((name) => ({
      name,
      version: state.installed[name]?.version,
      installedAt: state.installed[name]?.installedAt,
      current: name === current,
    })),
    lastCheck: state.lastCheck,
    hostId,
    waiting: state.waiting,
    bucket: bucketOf(hostId, state.waiting?.version ?? (current ? state.installed[current]?.version : undefined)),
    lastReport: await readLastReport(paths),
    pending: state.pending,
    running: Boolean(live),
    app: live?.app,
    instances: live?.instances,
    sockets: live?.sockets,
    health: live?.health,
    lastFailure: state.lastFailure,
    lastInstall: state.lastInstall,
  };
}

function bucketOf(hostId: string | undefined, version: string | undefined): Status['bucket'] {
  if (!hostId || !HOST_ID_PATTERN.test(hostId) || !version) return undefined;
  return { version, bucket: Math.floor(rolloutBucket(hostId, version) * 10000) / 10000 };
}

export function formatStatus(s: Status): string {
  const lines = [
    `dir:      ${s.dir}`,
    `current:  ${s.current ?? '(none)'}${s.version ? ` (version ${s.version})` : ''}`,
    `previous: ${s.previous ?? '(none)'}`,
    `highest:  ${s.highest ?? '(none)'}`,
  ];
  if (s.seq !== undefined) lines.push(`seq:      ${s.seq} (the last VERSION accepted; a lower SEQ is refused)`);
  if (s.binding)
    lines.push(
      `bound to: ${s.binding.app && s.binding.platform ? `APP ${s.binding.app} PLATFORM ${s.binding.platform}` : `${s.binding.prefix}-VERSION.tar.gz`}`,
    );
  if (s.versionExpires) lines.push(`expires:  ${s.versionExpires} (VERSION)`);
  if (s.bad.length) lines.push(`bad:      ${s.bad.join(', ')}`);
  if (s.hostId)
    lines.push(`host id:  ${s.hostId}${s.bucket ? ` (bucket ${s.bucket.bucket} for ${s.bucket.version})` : ''}`);
  if (s.waiting)
    lines.push(
      `rollout:  waiting: this host's bucket ${s.waiting.bucket} is not below ROLLOUT ` +
        `${s.waiting.rollout} for ${s.waiting.version}${s.waiting.seq !== undefined ? ` (SEQ ${s.waiting.seq})` : ''}`,
    );
  const release = (i: InstanceInfo) => (i.release ? ` (${i.release})` : '');
  lines.push(
    `app:      ${s.app ? `${s.app.state}${s.app.pid ? ` pid ${s.app.pid}` : ''}${release(s.app)}${s.app.restarts ? `, ${s.app.restarts} restarts` : ''}` : 'launchfit run is not active'}`,
  );
  if (s.instances && s.instances.length > 1)
    lines.push(
      `          ${s.instances.length} instances (an update is switching): ` +
        `${s.instances.map((i) => `pid ${i.pid ?? '-'}${release(i)}`).join(', ')}`,
    );
  if (s.sockets?.length) lines.push(`sockets:  ${s.sockets.join(', ')}`);
  if (s.health)
    lines.push(
      `health:   ${s.health.url}: ${s.health.last ?? 'not probed yet'}${s.health.failuresInARow ? ` (${s.health.failuresInARow} failed in a row)` : ''}`,
    );
  if (s.lastCheck)
    lines.push(`checked:  ${s.lastCheck.at} ${s.lastCheck.ok ? 'ok' : 'FAILED'}: ${s.lastCheck.message}`);
  if (s.lastInstall)
    lines.push(
      `installed: ${s.lastInstall.at} ${s.lastInstall.release} way ${s.lastInstall.way}, ${s.lastInstall.bytes} bytes fetched`,
    );
  if (s.lastReport)
    lines.push(
      `reported: ${s.lastReport.at} ${s.lastReport.result} ${s.lastReport.version} ` +
        `${s.lastReport.ok ? 'ok' : 'NOT TAKEN'}: ${s.lastReport.message}`,
    );
  if (s.lastFailure) {
    const f = s.lastFailure;
    lines.push(`rolled back: ${f.release} at ${f.at}: ${f.reason}`);
    for (const p of f.probes) lines.push(`  probe   ${p}`);
    for (const l of f.output) lines.push(`  output  ${l}`);
  }
  lines.push('releases:');
  for (const r of s.releases)
    lines.push(
      `  ${r.current ? '*' : ' '} ${r.name}${r.version ? `  ${r.version}` : ''}${r.installedAt ? `  ${r.installedAt}` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}
