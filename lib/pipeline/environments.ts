// An app's environments from shipkit.yml put to work (docs/environments.md): names resolved to DESTs,
// what a promote must pass before it writes (the target's deny windows, its approvals, the source's
// fleet having taken the release whole), and a rollout's windows, gates and fleet from the config.
import { ConfigError, UsageError, ValidationError } from '../core/errors.ts';
import { resolveSecret } from '../core/secrets.ts';
import type { AppConfig, EnvironmentConfig } from '../config/environments.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { openDestination } from '../release/dest/destination.ts';
import { checkApprovals } from '../release/gates/approvals.ts';
import { publishersOf, publisherUsersOf } from '../release/gates/approval-release.ts';
import { windowVerdict } from '../release/gates/windows.ts';
import type { LedgerEntry } from '../release/format/ledger.ts';
import { compareVersions, parseVersionFile } from '../release/format/version-file.ts';
import type { Logger } from '../core/log.ts';
import { tellApprovers, type ApprovalRequest } from '../notify/approval-request.ts';
import { resolveNotifyTargets } from '../config/notify.ts';
import { fleetUrlFor } from './pull-rollout.ts';

export interface AppEnvironment {
  app: AppConfig;
  env: EnvironmentConfig;
}

/** A name that is not a DEST (no `/`, no `:`): an environment of the app in shipkit.yml. */
export function namesEnvironment(value: string): boolean {
  return !/[/:]/.test(value) && value !== '.' && value !== '..';
}

export function appOf(config: Pick<ShipkitConfig, 'apps' | 'file'>, name: string): AppConfig {
  const app = config.apps.get(name);
  if (app) return app;
  const known = [...config.apps.keys()];
  throw new UsageError(
    `No app ${name} in ${config.file}` +
      (known.length
        ? `; it has: ${known.join(', ')}.`
        : '; add an apps: block with its environments (docs/environments.md).'),
  );
}

export function environmentOf(config: Pick<ShipkitConfig, 'apps' | 'file'>, app: string, env: string): AppEnvironment {
  const found = appOf(config, app);
  const environment = found.environments.get(env);
  if (!environment)
    throw new UsageError(
      `No environment ${env} for ${app} in ${config.file}; it has: ${[...found.environments.keys()].join(', ')}.`,
    );
  return { app: found, env: environment };
}

/** hook-server as `release rollout` reaches it: the app's fleet_url, else public_url, else http://listen. */
export function fleetUrlOf(config: Pick<ShipkitConfig, 'publicUrl' | 'listen'>, app: AppConfig): string {
  return fleetUrlFor(config, { fleetUrl: app.fleetUrl });
}

/** The environment's fleet secret, resolved; a rollout without a fleet: is a configuration error. */
export async function fleetSecretOf(
  config: Pick<ShipkitConfig, 'file'>,
  { app, env }: AppEnvironment,
): Promise<string> {
  if (!env.fleet)
    throw new ConfigError(
      `${config.file}: apps.${app.name}.environments.${env.name} names no fleet: (a fleet: app whose hosts take its releases).`,
    );
  const where = `${config.file}: fleet.${env.fleet.app}.secret`;
  return resolveSecret(env.fleet.secrets[0], { baseDir: config.file.replace(/\/[^/]*$/, ''), where });
}

/**
 * A refusal that time may lift: approvals still missing, or a deny window (until `opensAt`).
 * `release promote --wait` tries again on it; every other refusal is final.
 */
export class GateClosed extends ValidationError {
  override name = 'GateClosed';
  readonly opensAt?: Date;
  constructor(message: string, opensAt?: Date) {
    super(message);
    this.opensAt = opensAt;
  }
}

/**
 * `work`, tried again while it throws GateClosed (approvals missing, a deny window) and `waitMs`
 * lasts: every `pollMs`, and at the instant a window opens; `waiting` hears each new reason once.
 * Without `waitMs`, once. Holds nothing between tries (each promote takes its locks anew).
 */
export async function whileGateClosed<T>(
  waitMs: number | undefined,
  { pollMs, waiting }: { pollMs: number; waiting: (reason: string, until: Date) => void },
  work: () => Promise<T>,
): Promise<T> {
  const until = Date.now() + (waitMs ?? 0);
  let said = '';
  for (;;) {
    try {
      return await work();
    } catch (error) {
      const left = until - Date.now();
      if (!(error instanceof GateClosed) || left <= 0) throw error;
      if (error.message !== said) waiting((said = error.message), new Date(until));
      const opens = error.opensAt ? error.opensAt.getTime() - Date.now() : Infinity;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(pollMs, left, opens))));
    }
  }
}

export interface PromotionFacts {
  version: string;
  sha256: string;
  /** The source ledger's entries (chain verified). */
  sourceEntries: LedgerEntry[];
  /** The release certificate both ledgers verify with. */
  certificate: string;
  /** The promote's time, which its ledger entry records: the windows are judged at it. */
  at?: Date;
}

export interface PromotionGate {
  /** `--force --reason`: needs an approval as well. */
  force?: string;
  /** `--override --reason`: promote inside a deny window; needs an approval. */
  override?: string;
  /** Tells the approvers a release waits for them (lib/notify/approval-request.ts), before the refusal. */
  tell?: (request: ApprovalRequest) => Promise<void>;
  now?: Date;
  log: Logger;
}

/**
 * Asked by `release promote` under both locks, once the source's own rules passed and before anything
 * is written: throws (exit 2) when the target says no; returns the note its ledger entry keeps.
 */
export async function admitPromotion(
  { app, env }: AppEnvironment,
  source: EnvironmentConfig,
  facts: PromotionFacts,
  gate: PromotionGate,
): Promise<{ note: string }> {
  const now = gate.now ?? facts.at ?? new Date();
  const check = env.approvals
    ? await checkApprovals({
        dest: openDestination(env.to, gate.log),
        app: app.name,
        version: facts.version,
        sha256: facts.sha256,
        env: env.name,
        rule: env.approvals,
        publishers: await publishersOf(facts.sourceEntries, facts.certificate, app.name, facts.version),
        publisherUsers: publisherUsersOf(facts.sourceEntries, app.name, facts.version),
        now,
      })
    : undefined;
  const given = check?.valid.length ?? 0;
  const what = `${app.name} ${facts.version} into ${env.name}`;
  if (check && given < check.required) {
    const command = `shipkit approve ${app.name} ${facts.version} --env ${env.name} --key KEY`;
    await gate.tell?.({
      app: app.name,
      version: facts.version,
      env: env.name,
      sha256: facts.sha256,
      required: check.required,
      given,
      waitingFor: check.missing,
      command,
    });
    throw new GateClosed(
      `${what} needs ${check.required} approval${check.required === 1 ? '' : 's'}; ${given} given` +
        `${check.missing.length ? ` (waiting for ${check.missing.join(', ')})` : ''}` +
        `${check.refused.length ? `; not counted: ${check.refused.join('; ')}` : ''}. An approver runs ` +
        `\`${command}\`. Nothing was written.`,
    );
  }
  for (const [flag, reason] of [
    ['--force', gate.force],
    ['--override', gate.override],
  ] as const)
    if (reason !== undefined && given === 0)
      throw new ValidationError(
        `${flag} into ${env.name} needs an approval of ${what}` +
          `${env.approvals ? '' : `, and ${env.name} names no approvers (approvals: from:)`}. Nothing was written.`,
      );
  const verdict = windowVerdict(env.windows, now);
  if (!verdict.open && gate.override === undefined)
    throw new GateClosed(
      `${env.name} is in a ${verdict.reason}${verdict.opensAt ? ` until ${verdict.opensAt.toISOString()}` : ''}: ` +
        `promote after it, or pass --override --reason TEXT (needs an approval). Nothing was written.`,
      verdict.opensAt,
    );
  if (source.fleet && gate.force === undefined) checkTakenWhole(facts, source);
  const notes = [
    ...(check?.valid.map((a) => `approved by ${a.uid} (${a.approver.slice(0, 16)}) at ${a.at}`) ?? []),
    ...(!verdict.open ? [`in ${verdict.reason}, overridden: ${gate.override}`] : []),
  ];
  return { note: notes.join('; ') };
}

/** With a fleet at the source, the release must have reached ROLLOUT 100 there (never halted: the source's rules). */
function checkTakenWhole(facts: PromotionFacts, source: EnvironmentConfig): void {
  const whole = facts.sourceEntries.some(
    (e) =>
      e.version !== null &&
      compareVersions(e.version, facts.version) === 0 &&
      ['publish', 'promote', 'rollout'].includes(e.action) &&
      (e.rollout === null || e.rollout === 100),
  );
  if (!whole)
    throw new ValidationError(
      `${facts.version} never reached ROLLOUT 100 in ${source.name}'s fleet: finish its rollout there first ` +
        `(\`release rollout … --env ${source.name}\`), or pass --force --reason TEXT. Nothing was written.`,
    );
}

/**
 * `release rollout --env ENV --override`: the release VERSION at the environment's DEST names must
 * have an approval for it there that counts. The rollout still verifies VERSION's signature.
 */
export async function checkOverride({ app, env }: AppEnvironment, log: Logger, now = new Date()): Promise<void> {
  const dest = openDestination(env.to, log);
  const text = await dest.read('VERSION');
  const info = text ? parseVersionFile(text.toString('utf8')) : undefined;
  const check =
    info?.sha256 && env.approvals
      ? await checkApprovals({
          dest,
          app: app.name,
          version: info.version,
          sha256: info.sha256,
          env: env.name,
          rule: env.approvals,
          publishers: [],
          now,
        })
      : undefined;
  if (!check?.valid.length)
    throw new ValidationError(
      `--override in ${env.name} needs an approval of ${info ? `${app.name} ${info.version}` : 'the release at its DEST'}` +
        `${env.approvals ? '' : `, and ${env.name} names no approvers (approvals: from:)`}` +
        `${check?.refused.length ? ` (not counted: ${check.refused.join('; ')})` : ''}. Nothing was written.`,
    );
}

/**
 * Tells shipkit.yml's top-level notify targets that a release waits for approval, once per release,
 * environment and sha256 (a marker in `stateDir`); how many targets took it (0: none, or told before).
 */
export async function tellApproversOnce(
  config: Pick<ShipkitConfig, 'notify' | 'file' | 'publicUrl'>,
  request: ApprovalRequest,
  stateDir: string,
  log: Logger,
): Promise<number> {
  const resolved = await resolveNotifyTargets(new Map([['', config.notify]]), { file: config.file });
  const told = await tellApprovers(resolved.get('') ?? [], { ...request, publicUrl: config.publicUrl }, { stateDir });
  for (const outcome of told.outcomes)
    if (!outcome.ok) log.warn('could not tell the approvers', { target: outcome.where, detail: outcome.detail });
  return told.told ? told.outcomes.filter((o) => o.ok).length : 0;
}
