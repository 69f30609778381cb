// `release rollout APP --to DEST --fleet URL` (docs/fleet.md): raise ROLLOUT in DEST's VERSION step
// by step while the reports of the hosts already in show no more failures than allowed; each step
// re-signs VERSION with the next SEQ, written as `release rollback` writes it.
// The whole story: docs/internals.md.
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, RemoteError, ValidationError, messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { validateName } from '../../core/names.ts';
import { readAtMost } from '../../http/read-at-most.ts';
import { signRequest } from '../../http/signing.ts';
import { fleetBase } from './fleet-client.ts';
import { openDestination, type Destination, type StepHook } from '../dest/destination.ts';
import type { RolloutState } from '../format/fleet-report.ts';
import {
  appendLedger,
  publishEntryOf,
  publishedFacts,
  readLedgerAt,
  withDestinationLock,
  type LedgerMemory,
} from '../dest/ledger.ts';
import { rollbackPublished } from './rollback.ts';
import { countStep, formatCounts, judgeStep, type Allowance, type FleetHost, type StepCounts } from './plan.ts';
import { nextSeq, placeVersionPair, readPublishedVersion, type PublishedVersion } from '../dest/seq.ts';
import { loadSigningKey, publicCertificateFor, signDetached, type SigningKey } from '../format/signature.ts';
import { compareVersions, formatVersionFile, type VersionInfo } from '../format/version-file.ts';
import { leanFetch } from '../../http/client.ts';
import { windowVerdict, type DeployWindow } from '../gates/windows.ts';
import { holdGates, type MetricGate } from '../gates/metric.ts';

/** GET /fleet/APP for 10,000 hosts is about 3 MB; more than this is not a fleet answer. */
const MAX_FLEET_ANSWER = 64 * 1024 * 1024;

export interface RolloutOptions {
  name: string;
  to: string;
  /** hook-server's base URL (http://ci.example.com:8080); /fleet/… is appended. */
  fleet: string;
  /** The app's fleet secret (`fleet:` in hook-server's shipkit.yml), resolved. */
  secret: string;
  steps: number[];
  waitSec: number;
  maxFailures: Allowance;
  allowMissing: Allowance;
  rollback: boolean;
  key: string;
  passphraseFile?: string;
  keys?: string;
  /** Seconds between two looks at the fleet. Default 2. */
  pollSec?: number;
  log: Logger;
  /** Each step's counts and each decision, as lines for the operator. */
  print: (line: string) => void;
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  /** The state folder where the longest ledger read at each DEST is kept (`--state`); none: not checked. */
  state?: string;
  /** Called at each write of VERSION/VERSION.sig and `step:N:signed`; a test can stop there. */
  step?: StepHook;
  /** The version VERSION must name (a rollback in steps): another one there is refused, nothing written. */
  expectVersion?: string;
  /** Deploy windows: a step due in a deny window is held until it opens (docs/environments.md). */
  windows?: DeployWindow[];
  /** The reason a step is signed in a deny window anyway (`--override`), approved by the caller. */
  override?: string;
  /** Prometheus gates every step must hold for their `for:`; over max halts and rolls back. */
  gates?: MetricGate[];
}

/** How a run of `release rollout` ends. */
export type RolloutEnd = Extract<RolloutState, 'done' | 'halted' | 'rolled_back'>;

export interface RolloutResult {
  app: string;
  version: string;
  state: RolloutEnd;
  reason: string;
  /** The last step's ROLLOUT and SEQ at DEST. */
  percent: number;
  seq: number;
  steps: StepCounts[];
  /** With --rollback after a halt: the release hosts go back to, and its SEQ. */
  rolledBackTo?: { version: string; seq: number };
}

interface Signer {
  key: SigningKey;
  certificate: string;
  dest: Destination;
  /** What this publisher remembers of DEST's ledger (dest/seen.ts), with `--state`. */
  memory?: LedgerMemory;
}

export async function rolloutRelease(opts: RolloutOptions): Promise<RolloutResult> {
  validateName(opts.name, 'app name');
  const fleetUrl = fleetBase(opts.fleet);
  const key = await loadSigningKey(opts.key, opts.passphraseFile);
  const signer: Signer = {
    key,
    certificate: await publicCertificateFor(key, opts.key, opts.keys, new Date()),
    dest: openDestination(opts.to, opts.log),
    memory: opts.state
      ? { state: opts.state, app: opts.name, primary: key.getFingerprint().toLowerCase(), log: opts.log }
      : undefined,
  };
  let current = await readTrusted(signer, opts.name);
  const version = current.info.version;
  if (opts.expectVersion !== undefined && compareVersions(version, opts.expectVersion) !== 0)
    throw new ValidationError(
      `VERSION at ${signer.dest.where} names ${version}, not ${opts.expectVersion}: another publish came ` +
        `in between; run the command again. Nothing was written.`,
    );
  const at = current.info.rollout ?? 100;
  const remaining = opts.steps.filter((s) => s >= at);
  opts.print(
    at < 100 || current.info.rollout !== undefined
      ? `${opts.name} ${version} at ${signer.dest.where}: ROLLOUT ${at} (SEQ ${current.info.seq ?? '-'}); ` +
          `steps ${remaining.join(', ')} to go`
      : `${opts.name} ${version} at ${signer.dest.where} has no ROLLOUT: every host takes it already; waiting for the reports`,
  );
  const counts: StepCounts[] = [];
  for (const [i, percent] of remaining.entries()) {
    const label = `step ${opts.steps.indexOf(percent) + 1}/${opts.steps.length} (ROLLOUT ${percent})`;
    const stepInfo = { app: opts.name, version, step: opts.steps.indexOf(percent) + 1, percent, steps: opts.steps };
    const report = (state: RolloutState, reason = '', seq = current.info.seq ?? 0) =>
      postRollout(fleetUrl, opts, { ...stepInfo, seq, state, reason, at: new Date().toISOString() });
    const signing = percent !== at || i > 0;
    if (signing) {
      await holdForWindows(fleetUrl, opts, label, { ...stepInfo, seq: current.info.seq ?? 0 });
      // hook-server hears of the step's SEQ before any host can read it: no node refuses a report of it.
      const announce = (seq: number) => report('running', '', seq);
      current = await signStep(signer, current, percent, { step: opts.step, announce });
      opts.print(`${label}: signed VERSION SEQ ${current.info.seq}`);
    } else {
      opts.print(
        `${label}: VERSION at DEST is at this step already (SEQ ${current.info.seq ?? '-'}); not signed again`,
      );
    }
    await opts.step?.(`step:${percent}:signed`);
    if (!signing) await report('running');
    const started = Date.now();
    const outcome = await waitForStep(fleetUrl, opts, version, { percent, seq: current.info.seq }, label);
    counts.push(outcome.counts);
    const gated = outcome.halt ? undefined : await holdStepGates(opts, label, started);
    const why = outcome.halt ?? gated?.reason;
    if (!why) continue;
    opts.print(`${label}: halted: ${why}`);
    return halt(signer, { ...opts, rollback: gated ? gated.rollback : opts.rollback }, current, why, counts, report);
  }
  const seq = current.info.seq ?? 0;
  await postRollout(fleetUrl, opts, {
    app: opts.name,
    version,
    seq,
    step: opts.steps.length,
    percent: 100,
    steps: opts.steps,
    state: 'done',
    reason: '',
    at: new Date().toISOString(),
  });
  opts.print(`done: ${opts.name} ${version} is at ROLLOUT 100`);
  return { app: opts.name, version, state: 'done', reason: '', percent: 100, seq, steps: counts };
}

async function halt(
  signer: Signer,
  opts: RolloutOptions,
  current: PublishedVersion,
  reason: string,
  counts: StepCounts[],
  report: (state: RolloutState, reason?: string) => Promise<void>,
): Promise<RolloutResult> {
  const base = {
    app: opts.name,
    version: current.info.version,
    reason,
    percent: current.info.rollout ?? 100,
    seq: current.info.seq ?? 0,
    steps: counts,
  };
  await withDestinationLock(signer.dest, () =>
    recordInLedger(signer, 'halt', current.info, current.text, undefined, reason.slice(0, 1000)),
  );
  if (!opts.rollback) {
    await report('halted', reason);
    opts.print(
      `halted at ROLLOUT ${base.percent}; hosts not yet in keep their release. Fix and run again to ` +
        `continue, or \`release rollback ${opts.name} --to …\`.`,
    );
    return { ...base, state: 'halted' };
  }
  let back;
  try {
    back = await rollbackPublished({
      name: opts.name,
      to: opts.to,
      key: opts.key,
      passphraseFile: opts.passphraseFile,
      keys: opts.keys,
      log: opts.log,
      step: opts.step,
      state: opts.state,
    });
  } catch (error) {
    // Still a halt (exit 1): the step's hosts keep what they have, the others never took it.
    const why = `${reason}; --rollback failed: ${messageOf(error)}`;
    await report('halted', why);
    opts.print(`halted at ROLLOUT ${base.percent}, and could not roll back: ${messageOf(error)}`);
    return { ...base, reason: why, state: 'halted' };
  }
  await report('rolled_back', `${reason}; rolled back to ${back.version} (SEQ ${back.seq})`);
  opts.print(`rolled back: VERSION SEQ ${back.seq} names ${back.version} for every host`);
  return { ...base, state: 'rolled_back', rolledBackTo: { version: back.version, seq: back.seq } };
}

/**
 * Before a step is signed: in a deny window (or outside every allow window) the rollout holds,
 * telling hook-server `waiting` with the window, and goes on when it opens; `--override` signs anyway.
 */
async function holdForWindows(
  fleetUrl: URL,
  opts: RolloutOptions,
  label: string,
  point: Record<string, unknown>,
): Promise<void> {
  let told = '';
  for (;;) {
    const verdict = windowVerdict(opts.windows ?? [], new Date());
    if (verdict.open) return;
    if (opts.override) {
      opts.print(`${label}: ${verdict.reason}, signed anyway (--override: ${opts.override})`);
      return;
    }
    const until = verdict.opensAt;
    const reason = `held by ${verdict.reason}${until ? ` until ${until.toISOString()}` : ''}`;
    if (reason !== told) {
      opts.print(`${label}: ${reason}`);
      await postRollout(fleetUrl, opts, { ...point, state: 'waiting', reason, at: new Date().toISOString() });
      told = reason;
    }
    const wait = until ? until.getTime() - Date.now() : 60_000;
    await sleep(Math.min(Math.max(wait, 50), 60_000), undefined, { signal: opts.signal });
  }
}

/** A step's metric gates, held for their `for:` within the step's --wait; what halts it, if anything. */
async function holdStepGates(
  opts: RolloutOptions,
  label: string,
  started: number,
): Promise<{ reason: string; rollback: boolean } | undefined> {
  if (!opts.gates?.length) return undefined;
  const outcome = await holdGates(opts.gates, {
    // Good readings pass as soon as every gate held its for:; unreadable ones hold until the step's --wait.
    deadline: started + opts.waitSec * 1000,
    pollMs: (opts.pollSec ?? 2) * 1000,
    print: (line) => opts.print(`${label}: ${line}`),
    signal: opts.signal,
    fetch: opts.fetch,
  });
  if (!outcome.pass) return { reason: outcome.reason, rollback: outcome.rollback };
  for (const reading of outcome.readings) opts.print(`${label}: passed: ${reading}`);
  return undefined;
}

/** The VERSION at DEST, which must verify with this key and be this app's. */
async function readTrusted(signer: Signer, app: string): Promise<PublishedVersion> {
  const read = await readPublishedVersion(signer.dest, signer.certificate);
  if (!read.published)
    throw new ValidationError(
      read.problem
        ? `${read.problem}; cannot roll it out. Nothing was written.`
        : `${signer.dest.where} has no VERSION; publish a release first (\`release publish … --rollout 1\`). Nothing was written.`,
    );
  const info = read.published.info;
  if ((info.app ?? app) !== app || !info.file.startsWith(`${app}-`))
    throw new ValidationError(
      `The VERSION at ${signer.dest.where} is for ${info.file}, not for app ${app}. Nothing was written.`,
    );
  return read.published;
}

/**
 * Re-sign VERSION with the next SEQ and ROLLOUT = percent, everything else as it was, and record the
 * step in the ledger; `announce` tells hook-server the SEQ before VERSION is placed.
 */
function signStep(
  signer: Signer,
  current: PublishedVersion,
  percent: number,
  { step, announce }: { step?: StepHook; announce?: (seq: number) => Promise<void> } = {},
): Promise<PublishedVersion> {
  return withDestinationLock(signer.dest, async () => {
    // Under the lock: a publish or rollback between two steps must not be signed over.
    const there = await readPublishedVersion(signer.dest, signer.certificate);
    if (!there.published?.text.equals(current.text))
      throw new ValidationError(
        `VERSION at ${signer.dest.where} changed since the last step of this rollout ` +
          `(${there.published ? `it names ${there.published.info.version}, SEQ ${there.published.info.seq ?? '-'}` : 'it is gone or does not verify'}): another publish, rollout or rollback wrote it. This rollout stops here; nothing was written.`,
      );
    const seq = nextSeq({ published: current }, undefined, signer.dest.where);
    const info = { ...current.info, seq, rollout: percent };
    const text = formatVersionFile(info);
    const signature = await signDetached(signer.key, { data: Buffer.from(text) });
    await recordInLedger(signer, 'rollout', info, text, step);
    await announce?.(seq);
    await placeVersionPair(signer.dest, text, signature, current, step);
    return { info, text: Buffer.from(text), signature };
  });
}

/** Appends a rollout step or a halt of the release `info` names to DEST's ledger. */
async function recordInLedger(
  signer: Signer,
  action: 'rollout' | 'halt',
  info: VersionInfo,
  versionText: string | Buffer,
  step?: StepHook,
  note: string | null = null,
): Promise<void> {
  const ledger = await readLedgerAt(signer.dest, signer.certificate, { memory: signer.memory });
  const app = info.app ?? info.file.slice(0, info.file.indexOf('-'));
  await appendLedger(
    signer.dest,
    signer.key,
    ledger,
    {
      action,
      app,
      version: info.version,
      seq: info.seq ?? null,
      rollout: info.rollout ?? null,
      sha256: info.sha256 ?? null,
      versionText,
      ...publishedFacts(publishEntryOf(ledger.ledger.entries, app, info.version)),
      note,
    },
    step,
  );
}

/** Look at the fleet every pollSec until the step may go on or must halt; `halt` says why. */
async function waitForStep(
  fleetUrl: URL,
  opts: RolloutOptions,
  version: string,
  { percent, seq }: { percent: number; seq?: number },
  label: string,
): Promise<{ counts: StepCounts; halt?: string }> {
  const deadline = Date.now() + opts.waitSec * 1000;
  let last = '';
  let unreachable = '';
  let counts = countStep([], version, percent);
  for (;;) {
    const waitOver = Date.now() >= deadline;
    try {
      counts = await fetchStepCounts(fleetUrl, opts, version, { percent, seq });
      unreachable = '';
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      unreachable = messageOf(error);
      opts.log.warn('fleet not readable', { error: unreachable });
    }
    const line = `${label}: ${formatCounts(counts)}`;
    if (line !== last) opts.print(line);
    last = line;
    if (!unreachable) {
      const verdict = judgeStep(counts, { maxFailures: opts.maxFailures, allowMissing: opts.allowMissing }, waitOver);
      if (verdict.go) return { counts };
      if (!verdict.wait) return { counts, halt: verdict.reason };
    } else if (waitOver) {
      return {
        counts,
        halt: `hook-server's fleet answer could not be read for --wait ${opts.waitSec} s (${unreachable})`,
      };
    }
    await sleep(Math.max(0, Math.min((opts.pollSec ?? 2) * 1000, deadline - Date.now() + 10)), undefined, {
      signal: opts.signal,
    });
  }
}

const fleetPath = (base: URL, rest: string) => new URL(rest, base);

/**
 * The step's counts: GET /fleet/APP?step=&version=&seq=, counted by hook-server; a hook-server
 * from before that answers the whole list of hosts instead, which is counted here.
 */
async function fetchStepCounts(
  base: URL,
  opts: RolloutOptions,
  version: string,
  { percent, seq }: { percent: number; seq?: number },
): Promise<StepCounts> {
  const query = new URLSearchParams({
    step: String(percent),
    version,
    ...(seq === undefined ? {} : { seq: String(seq) }),
  });
  const answer = await fetchFleet(base, opts, query);
  if (answer.counts) return answer.counts;
  return countStep(answer.hosts!, version, percent, { stepSeq: seq });
}

/** Counts as hook-server sent them, when they have the shape of StepCounts (else undefined). */
function stepCountsOf(value: unknown, percent: number): StepCounts | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const c = value as Record<string, unknown>;
  const whole = (k: string) => Number.isSafeInteger(c[k]) && (c[k] as number) >= 0;
  const keys = ['expected', 'reported', 'updated', 'failed', 'pending', 'claimed', 'forged'];
  if (c.percent !== percent || !keys.every(whole) || !Array.isArray(c.failures)) return undefined;
  const failures = (c.failures as unknown[])
    .filter((f): f is StepCounts['failures'][number] => {
      const e = f as Record<string, unknown>;
      return typeof f === 'object' && f !== null && [e.host, e.result, e.reason].every((x) => typeof x === 'string');
    })
    .slice(0, 10);
  return { ...(c as unknown as StepCounts), failures };
}

/** GET /fleet/APP?QUERY, signed with the app's secret; 401/404 are configuration errors (exit 2). */
async function fetchFleet(
  base: URL,
  opts: RolloutOptions,
  query: URLSearchParams,
): Promise<{ counts?: StepCounts; hosts?: FleetHost[] }> {
  const url = fleetPath(base, `fleet/${encodeURIComponent(opts.name)}?${query}`);
  const headers = signRequest(opts.secret, 'GET', `${url.pathname}${url.search}`);
  const response = await (opts.fetch ?? leanFetch)(url, {
    headers,
    signal: AbortSignal.any([AbortSignal.timeout(30_000), ...(opts.signal ? [opts.signal] : [])]),
  });
  const body = (await readAtMost(response.body, MAX_FLEET_ANSWER + 1)).toString('utf8');
  if (response.status === 401 || response.status === 403)
    throw new ConfigError(
      `hook-server refused GET ${url.pathname} (${response.status}): --fleet-secret is not the secret of ` +
        `app ${opts.name} in its fleet: section.`,
    );
  if (response.status === 404)
    throw new ConfigError(
      `hook-server at ${base.origin} does not know app ${opts.name} (404): add it under fleet: in its shipkit.yml.`,
    );
  if (response.status !== 200) throw new RemoteError(`GET ${url.pathname} answered ${response.status}`);
  if (body.length > MAX_FLEET_ANSWER)
    throw new RemoteError(`GET ${url.pathname} answered more than ${MAX_FLEET_ANSWER} bytes`);
  let parsed: { hosts?: unknown; counts?: unknown };
  try {
    parsed = JSON.parse(body) as { hosts?: unknown; counts?: unknown };
  } catch {
    throw new RemoteError(`GET ${url.pathname} answered something other than JSON`);
  }
  if (parsed.counts !== undefined) {
    const counts = stepCountsOf(parsed.counts, Number(query.get('step')));
    if (!counts) throw new RemoteError(`GET ${url.pathname} answered counts that are not a step's`);
    return { counts };
  }
  if (!Array.isArray(parsed.hosts)) throw new RemoteError(`GET ${url.pathname} answered JSON without a hosts list`);
  const hosts = parsed.hosts.filter(
    (h): h is FleetHost => typeof h === 'object' && h !== null && typeof (h as FleetHost).host === 'string',
  );
  return { hosts };
}

/**
 * POST /fleet/rollouts: the status page shows the step and hook-server's audit trail records what
 * it means (lib/audit/actions.ts); a failure to tell it is logged, not fatal.
 */
export async function postRollout(
  base: URL,
  opts: Pick<RolloutOptions, 'secret' | 'fetch' | 'log'>,
  state: Record<string, unknown>,
): Promise<void> {
  const url = fleetPath(base, 'fleet/rollouts');
  const body = JSON.stringify(state);
  try {
    const headers = { ...signRequest(opts.secret, 'POST', url.pathname, { body }), 'Content-Type': 'application/json' };
    const response = await (opts.fetch ?? leanFetch)(url, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(30_000),
    });
    await response.body?.cancel();
    if (response.status !== 202)
      opts.log.warn('hook-server did not take the rollout state', { status: response.status });
  } catch (error) {
    opts.log.warn('could not tell hook-server the rollout state', { error: messageOf(error) });
  }
}
