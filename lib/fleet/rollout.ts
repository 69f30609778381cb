// A staged rollout (docs/server-update.md): the canary hosts
// alone first, then growing shares of the rest, each wave waiting for every host's verdict
// (&wait=1). A wave with more failed hosts than allowed halts the rollout; later hosts are never
// contacted. Ansible's `serial` + `max_fail_percentage`, for plain HTTP hosts.
import { UsageError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import { controlGet } from '../http/control-client.ts';
import { signRequest } from '../http/signing.ts';
import { notifyTargets, type NotifyOptions, type Target, type TargetResult } from './server-update.ts';

export interface Wave {
  /** `canary`, or `wave N` with its share of the hosts after the canary. */
  name: string;
  targets: Target[];
}

export interface WaveReport {
  name: string;
  results: TargetResult[];
  failed: number;
}

export interface RolloutReport {
  waves: WaveReport[];
  /** Set when a wave had more failures than allowed: the wave and its failed hosts. */
  halted?: { wave: string; failed: string[]; maxFailures: number };
  /** The rollout was stopped from outside (SIGTERM) before it finished. */
  interrupted: boolean;
  /** Hosts of the waves that never started. */
  notContacted: string[];
  /** Some hosts were told to prepare (nothing switched there). */
  prepared?: boolean;
}

/** `25%,100%` → [25, 100]: shares that grow, each in (0, 100], the last one 100. */
export function parseWaves(text: string): number[] {
  const parts = text.split(',').map((part) => part.trim());
  const shares = parts.map((part) => {
    const match = /^(\d{1,3}(?:\.\d+)?)%$/.exec(part);
    const share = match ? Number(match[1]) : NaN;
    if (!(share > 0 && share <= 100))
      throw new UsageError(`--waves: ${JSON.stringify(part)} is not a share; write percentages such as 25%,100%.`);
    return share;
  });
  shares.forEach((share, i) => {
    if (i > 0 && share <= shares[i - 1])
      throw new UsageError(
        `--waves must grow: ${parts[i]} comes after ${parts[i - 1]}; each wave's share counts from the first host after the canary.`,
      );
  });
  if (shares.at(-1) !== 100)
    throw new UsageError(`--waves must end at 100% (got ${parts.at(-1)}), or the last hosts would never be updated.`);
  return shares;
}

/**
 * The canary (the first `canary` targets of the list), then for each share s the hosts up to
 * round(s% of the rest). A wave that would hold no host is an error that names it.
 */
export function planRollout(
  targets: readonly Target[],
  { canary = 0, shares = [100] }: { canary?: number; shares?: readonly number[] },
): Wave[] {
  if (canary > targets.length)
    throw new UsageError(`--canary ${canary} is more than the ${targets.length} target(s) in the list.`);
  const waves: Wave[] = canary ? [{ name: 'canary', targets: targets.slice(0, canary) }] : [];
  const rest = targets.slice(canary);
  if (!rest.length) return waves;
  let done = 0;
  shares.forEach((share, i) => {
    const upTo = share === 100 ? rest.length : Math.round((rest.length * share) / 100);
    if (upTo <= done) {
      throw new UsageError(
        `--waves: wave ${i + 1} (${share}%) adds no host: ${share}% of the ${rest.length} host(s) after ` +
          `the canary rounds to ${upTo}${i ? `, as the wave before it did` : ''}. Use fewer or larger waves.`,
      );
    }
    waves.push({ name: `wave ${i + 1} (${share}%)`, targets: rest.slice(done, upTo) });
    done = upTo;
  });
  return waves;
}

export interface RolloutOptions extends Omit<NotifyOptions, 'wait'> {
  maxFailures: number;
  signal?: AbortSignal;
  onWaveStart?: (wave: Wave, index: number) => void;
  /**
   * launchfit hosts: once a wave has run `afterMs` without ending, the next wave's hosts are told
   * to prepare (GET /prepare?repo=NAME: download, verify and unpack the release, switching to
   * nothing), so their own wave only installs and switches. A wave that ends sooner (hosts that
   * answer at once: slaves) sends none, so fast fleets pay no second request per host. A host that
   * cannot prepare (a slave, an older launchfit: 404) does everything in its own wave, as before.
   */
  prepare?: { afterMs: number };
}

/** Tell `targets` to prepare (see RolloutOptions.prepare); answers and failures do not matter. */
export async function prepareTargets(
  targets: readonly Target[],
  options: Pick<NotifyOptions, 'repo' | 'secret' | 'concurrency' | 'timeoutMs' | 'signal'>,
): Promise<void> {
  await mapLimit([...targets], options.concurrency, async (target) => {
    if (options.signal?.aborted) return;
    const base = new URL(target.url);
    const pathAndQuery = `${base.pathname.replace(/\/+$/, '')}/prepare?repo=${encodeURIComponent(options.repo)}`;
    const headers: Record<string, string> = { 'User-Agent': 'shipkit-server-update', Accept: 'application/json' };
    if (options.secret) Object.assign(headers, signRequest(options.secret, 'GET', pathAndQuery));
    await controlGet(base.origin + pathAndQuery, {
      headers,
      timeoutMs: Math.min(options.timeoutMs, 10_000),
      signal: options.signal,
    }).catch(() => {});
  });
}

/** Runs the waves in order, each with &wait=1; stops at the first wave over its failure budget. */
export async function runRollout(waves: readonly Wave[], options: RolloutOptions): Promise<RolloutReport> {
  const report: RolloutReport = { waves: [], interrupted: false, notContacted: [], prepared: false };
  const preparing: Array<Promise<void>> = [];
  for (const [index, wave] of waves.entries()) {
    if (options.signal?.aborted || report.halted) {
      report.interrupted ||= Boolean(options.signal?.aborted);
      report.notContacted.push(...wave.targets.map((t) => t.url));
      continue;
    }
    options.onWaveStart?.(wave, index);
    const next = options.prepare && waves[index + 1];
    const timer = next
      ? setTimeout(() => {
          report.prepared = true;
          preparing.push(prepareTargets(next.targets, options));
        }, options.prepare!.afterMs)
      : undefined;
    const results = await notifyTargets(wave.targets, { ...options, wait: true, verdicts: true });
    clearTimeout(timer);
    const failed = results.filter((r) => !r.ok);
    report.waves.push({ name: wave.name, results, failed: failed.length });
    if (options.signal?.aborted) report.interrupted = true;
    else if (failed.length > options.maxFailures)
      report.halted = { wave: wave.name, failed: failed.map((r) => r.target), maxFailures: options.maxFailures };
  }
  await Promise.all(preparing);
  return report;
}

/**
 * How a rollout ended, in one sentence: what `server-update` prints last and what the pipeline's
 * rollout step fails with. It names the failed hosts and the ones later waves never contacted.
 */
export function describeRollout(report: RolloutReport): string {
  const results = report.waves.flatMap((w) => w.results);
  const failed = results.filter((r) => !r.ok).length;
  const how = report.prepared ? 'were not told to update (some only to prepare)' : 'were not contacted';
  const untouched = report.notContacted.length
    ? `; ${report.notContacted.length} host(s) of later waves ${how}: ${report.notContacted.join(' ')}`
    : '';
  if (report.halted) {
    const { wave, failed: hosts, maxFailures } = report.halted;
    return (
      `The rollout halted at ${wave}: ${hosts.length} host(s) failed (at most ${maxFailures} ` +
      `allowed): ${hosts.join(' ')}${untouched}.`
    );
  }
  if (report.interrupted)
    return `The rollout was interrupted after ${report.waves.length} wave(s)${untouched || '; every wave had started'}.`;
  return (
    `The rollout is done: ${report.waves.length} wave(s), ` +
    `${results.length - failed}/${results.length} host(s) updated${failed ? `, ${failed} failed (within each wave's allowance)` : ''}.`
  );
}
