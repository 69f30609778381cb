// hook-server's fleet routes (docs/fleet.md): POST /fleet/reports, /fleet/rollouts and
// /fleet/forget, GET /fleet/APP and /fleet/APP/releases; signed with the app's secret, or an enrolled host's own
// credential; bodies capped before parsing.
// The whole story: docs/internals.md.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { HttpError, readBody, sendJson } from '../http/server.ts';
import {
  createRequestVerifier,
  NONCE_HEADER,
  sha256Hex,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  type RequestVerifier,
} from '../http/signing.ts';
import type { AddOutcome, FleetRegistry } from '../fleet/fleet-memory.ts';
import type { FleetReleases, FleetReleasesOptions } from '../release/rollout/fleet-view.ts';
import {
  checkForget,
  checkReport,
  checkRollout,
  hostCredential,
  MAX_FORGET_BYTES,
  MAX_REPORT_BYTES,
  type HostEntry,
  type RolloutRecord,
} from '../release/format/fleet-report.ts';
import { HOST_ID_PATTERN, rolloutBucket } from '../release/format/bucket.ts';
import { countStep, type FleetHost } from '../release/rollout/plan.ts';
import type { Refuse } from '../web/read-sources.ts';
import { rolloutAction } from '../audit/actions.ts';
import { clientOf, type AuditRecord } from '../audit/trail.ts';

const BODY_TIMEOUT_MS = 10_000;
const DAY_MS = 86_400_000;
const POST_ROUTES = ['reports', 'rollouts', 'forget'];

/** Why a fleet request was refused, as /metrics labels it ('full': a new host beyond max_hosts). */
export type RefusalReason =
  'too_large' | 'malformed' | 'unknown_app' | 'bad_signature' | 'replay' | 'stale' | 'unavailable' | 'full';

/** What a route's `keep` may answer instead of its success: a refusal, counted and sent. */
interface Refusal {
  refused: RefusalReason;
  status: number;
  message: string;
  /** For the log, not the client. */
  detail?: string;
}

export interface FleetRoutesOptions {
  /** Each app's fleet secrets (shipkit.yml `fleet:`), resolved: the current one first, then those of a change-over. */
  secrets: ReadonlyMap<string, readonly string[]>;
  store: FleetRegistry;
  /** Each app's max_hosts: a report of a host not yet in is refused when the app has that many. */
  maxHosts?: ReadonlyMap<string, number>;
  /** The path of `public_url:` (a proxy's prefix): a sender may have signed the path with it. */
  base: string;
  log: Logger;
  /** GET /fleet/APP/releases: the app's ledger joined with its hosts' reports. */
  releases?: (app: string, page: FleetReleasesOptions) => Promise<FleetReleases>;
  /** A status-page session or the read token opens GET /fleet/APP too. */
  canRead?: (req: IncomingMessage) => boolean;
  onReport?: (app: string, result: string) => void;
  onRefused?: (reason: RefusalReason) => void;
  /** The audit trail: rollout starts, steps, halts, resumes, rollbacks and forgets, on disk before the answer. */
  record?: (entry: AuditRecord) => Promise<unknown>;
  now?: () => number;
}

/**
 * Retry-After for a report the database could not take: 5 to 15 s, drawn for each answer, so that
 * a fleet refused in one second (every node restarted, the database failing over) comes back spread.
 */
export function retryLater(random = Math.random): Record<string, string> {
  return { 'Retry-After': String(5 + Math.floor(random() * 11)) };
}

/** The highest SEQ a report may name while `rollout` runs or waits (any, otherwise). */
function highestSeq(rollout: RolloutRecord | null): number {
  return rollout && (rollout.state === 'running' || rollout.state === 'waiting') ? rollout.seq : Infinity;
}

/** A host's entry as GET /fleet/APP shows it (times as ISO strings; the nonces kept against a replay left out). */
export function publicHost(entry: HostEntry) {
  const { nonces: _nonces, ...shown } = entry;
  return { ...shown, at: new Date(entry.at).toISOString() };
}

export function publicRollout(rollout: RolloutRecord | null) {
  if (!rollout) return null;
  const { received, ...rest } = rollout;
  return { ...rest, received: new Date(received).toISOString() };
}

/** Releases GET /fleet/APP/releases answers unless `?limit=` says otherwise (`limit=0`: the counts only). */
export const RELEASES_PAGE = 100;
const MAX_RELEASES_PAGE = 10_000;

/** `?limit=N&offset=M` of GET /fleet/APP/releases, or why it is refused. */
export function releasesPage(
  params: URLSearchParams,
  page = RELEASES_PAGE,
  maxPage = MAX_RELEASES_PAGE,
): FleetReleasesOptions | string {
  const whole = (name: string, fallback: number, max: number): number | string => {
    const value = params.get(name);
    if (value === null) return fallback;
    return /^\d{1,9}$/.test(value) && Number(value) <= max
      ? Number(value)
      : `${name} must be a whole number from 0 to ${max}`;
  };
  const limit = whole('limit', page, maxPage);
  const offset = whole('offset', 0, 100_000_000);
  if (typeof limit === 'string') return limit;
  if (typeof offset === 'string') return offset;
  return { limit, offset };
}

/** Hosts GET /fleet/APP answers in one page unless `?limit=` says otherwise. */
export const FLEET_PAGE = 1_000;
const MAX_FLEET_PAGE = 10_000;

/**
 * GET /fleet/APP's query: `?limit=N&offset=M` (a page of the hosts), or `?step=P&version=V[&seq=S]`
 * (the counts `release rollout` waits on, counted here: no list of every host); or why it is refused.
 */
export function fleetQuery(
  params: URLSearchParams,
): { limit: number; offset: number } | { step: number; version: string; seq?: number } | string {
  const step = params.get('step');
  if (step === null) {
    const page = releasesPage(params, FLEET_PAGE, MAX_FLEET_PAGE);
    return typeof page === 'string' ? page : { limit: page.limit ?? FLEET_PAGE, offset: page.offset ?? 0 };
  }
  if (!/^\d{1,3}(\.\d{1,2})?$/.test(step) || Number(step) <= 0 || Number(step) > 100)
    return 'step must be a percent above 0, up to 100';
  const version = params.get('version') ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(version)) return 'version must be a release version';
  const seq = params.get('seq');
  if (seq !== null && !/^\d{1,15}$/.test(seq)) return 'seq must be a whole number';
  return { step: Number(step), version, ...(seq === null ? {} : { seq: Number(seq) }) };
}

const isRefusal = (answer: object): answer is Refusal => 'refused' in answer;

/** The answer to a report host-guard.ts refuses (lib/fleet): taken before, or the app's secret for a seen host. */
function guardRefusal(app: string, host: string, outcome: AddOutcome): Refusal | undefined {
  if (outcome === 'enrolled')
    return { refused: 'bad_signature', status: 401, message: 'unauthorized', detail: `${app}: ${enrolled(host)}` };
  if (outcome === 'busy')
    return { refused: 'replay', status: 429, message: 'too many reports of this host in one second, try again' };
  if (outcome !== 'replay') return undefined;
  const detail = `${app}: a report of host ${host} taken before, or older than the host's last report`;
  return { refused: 'replay', status: 401, message: 'unauthorized', detail };
}

const enrolled = (host: string) =>
  `host ${host} is enrolled: its reports are signed with its own credential, not the app's secret`;

/** The answer to a report of a new host when the app has max_hosts: refused, nothing written. */
function fullRefusal(app: string, maxHosts: number): Refusal {
  return {
    refused: 'full',
    status: 403,
    message:
      `the fleet registry of ${app} is full (max_hosts: ${maxHosts}): raise fleet.${app}.max_hosts ` +
      `in hook-server's shipkit.yml, or forget hosts with \`shipkit fleet forget\``,
  };
}

/** A POST body read and parsed, naming an app of `fleet:`. */
interface SignedBody {
  app: string;
  value: unknown;
  verifier: RequestVerifier;
  bodySha256: string;
}

function refusalOf(verdictReason: string): RefusalReason {
  if (verdictReason === 'replayed nonce') return 'replay';
  if (verdictReason.startsWith('timestamp outside')) return 'stale';
  return 'bad_signature';
}

/** The /fleet/ routes of one hook-server: its apps' verifiers (and their nonces) and the store. */
export class FleetRoutes {
  private readonly options: FleetRoutesOptions;
  private readonly now: () => number;
  // One verifier per app: its own secret and its own memory of nonces.
  private readonly verifiers: Map<string, RequestVerifier>;
  /** bucketsOf: per app, the version a rollout last asked about and its hosts' buckets. */
  private readonly buckets = new Map<string, { version: string; of: Map<string, number> }>();

  constructor(options: FleetRoutesOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.verifiers = new Map(
      [...options.secrets].map(([app, secrets]) => [app, createRequestVerifier(secrets[0], { now: this.now })]),
    );
  }

  /** Answers the request when it is a /fleet/ route; false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean> {
    const route = url.pathname;
    if (!route.startsWith('/fleet/')) return false;
    const rest = route.slice('/fleet/'.length);
    if (req.method === 'POST' && POST_ROUTES.includes(rest)) {
      if (rest === 'reports') await this.postReport(req, res, refuse);
      else if (rest === 'rollouts') await this.postRollout(req, res, refuse);
      else await this.postForget(req, res, refuse);
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      // App names are plain (lib/core/names.ts): a path that needs decoding names none.
      const [app, more, ...beyond] = rest.split('/');
      if (!/^[A-Za-z0-9._-]+$/.test(app) || beyond.length || (more !== undefined && more !== 'releases'))
        refuse(404, 'not found');
      else if (more === 'releases') await this.getReleases(req, res, app, url, refuse);
      else this.getFleet(req, res, app, refuse);
    } else {
      refuse(405, 'method not allowed', undefined, {
        Allow: POST_ROUTES.includes(rest) ? 'POST' : 'GET, HEAD',
      });
    }
    return true;
  }

  private signedPaths(req: IncomingMessage): string[] {
    const sent = req.url ?? '/';
    return this.options.base ? [sent, this.options.base + sent] : [sent];
  }

  /** A refusal counted in /metrics and answered. */
  private refused(refuse: Refuse, reason: RefusalReason, status: number, message: string, detail?: string): undefined {
    this.options.onRefused?.(reason);
    refuse(status, message, detail);
    return undefined;
  }

  /** The body read under its cap (`limit`) and parsed, naming an app of `fleet:`; not yet verified. */
  private async readJson(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
    limit = MAX_REPORT_BYTES,
  ): Promise<SignedBody | undefined> {
    let body: Buffer;
    try {
      body = await readBody(req, { res, limit, timeoutMs: BODY_TIMEOUT_MS });
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      const tooLarge = status === 413;
      const message = tooLarge ? 'body too large' : 'could not read body';
      return this.refused(refuse, tooLarge ? 'too_large' : 'malformed', status, message, messageOf(error));
    }
    if (!req.headers[SIGNATURE_HEADER])
      return this.refused(refuse, 'bad_signature', 401, 'unauthorized', 'missing signature headers');
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return this.refused(refuse, 'malformed', 400, 'body is not JSON');
    }
    const app = (value as { app?: unknown } | null)?.app;
    if (typeof app !== 'string') return this.refused(refuse, 'malformed', 400, 'app is missing');
    const verifier = this.verifiers.get(app);
    if (!verifier) {
      const detail = `no fleet: entry for ${JSON.stringify(app.slice(0, 100))}`;
      return this.refused(refuse, 'unknown_app', 404, 'unknown app', detail);
    }
    return { app, value, verifier, bodySha256: sha256Hex(body) };
  }

  /** A body signed with one of `keys` (default: the app's secrets); the index of the one that signed it. */
  private async readSigned(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
    keysOf: (read: SignedBody) => { keys: readonly string[]; refusal?: string } | undefined = (read) => ({
      keys: this.options.secrets.get(read.app)!,
    }),
    limit = MAX_REPORT_BYTES,
  ): Promise<(SignedBody & { signedBy: number }) | undefined> {
    const read = await this.readJson(req, res, refuse, limit);
    if (!read) return undefined;
    const keys = keysOf(read);
    if (!keys) return undefined;
    const verdict = read.verifier.verify('POST', this.signedPaths(req), req.headers, {
      bodySha256: read.bodySha256,
      secrets: keys.keys,
    });
    if (!verdict.ok) {
      const why = verdict.reason === 'wrong signature' && keys.refusal ? keys.refusal : verdict.reason;
      return this.refused(refuse, refusalOf(verdict.reason), 401, 'unauthorized', `${read.app}: ${why}`);
    }
    return { ...read, signedBy: verdict.secret };
  }

  /**
   * Checked by `check`, then kept; 400 for a body the contract refuses, 503 when it cannot be
   * written, the refusal `keep` returns; else `status` with what `keep` answered.
   */
  private async accept<T>(
    res: ServerResponse,
    refuse: Refuse,
    check: () => T,
    keep: (value: T) => Promise<Record<string, unknown> | Refusal>,
    status = 202,
  ): Promise<void> {
    let value: T;
    try {
      value = check();
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      this.options.onRefused?.('malformed');
      return refuse(400, error.message);
    }
    let answer: Record<string, unknown> | Refusal;
    try {
      answer = await keep(value);
    } catch (error) {
      this.options.onRefused?.('unavailable');
      const detail = (error as NodeJS.ErrnoException).code ?? messageOf(error);
      return refuse(503, 'could not store it, try again', detail, retryLater());
    }
    if (isRefusal(answer))
      return void this.refused(refuse, answer.refused, answer.status, answer.message, answer.detail);
    sendJson(res, status, { ok: true, ...answer });
  }

  /**
   * A host's report. Signed with its own credential (hostCredential of any of the app's secrets),
   * or, for a host not seen before, with the app's secret: then (or when signed with a credential
   * of an older secret) the answer carries its current credential, the only key it signs with from
   * then on. Each signed report is taken once (host-guard.ts), also after a restart.
   */
  private async postReport(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const { store, log } = this.options;
    let credentials: string[] = [];
    const signed = await this.readSigned(req, res, refuse, ({ app, value }) => {
      const host = (value as { host?: unknown }).host;
      if (typeof host !== 'string' || !HOST_ID_PATTERN.test(host)) {
        return this.refused(refuse, 'malformed', 400, 'report host must be 32 lowercase hex characters');
      }
      const secrets = this.options.secrets.get(app)!;
      credentials = secrets.map((secret) => hostCredential(secret, host));
      // Its credential was issued in the answer to its first report: only that speaks for it now.
      if (!store.host(app, host)) return { keys: [...credentials, ...secrets] };
      return { keys: credentials, refusal: enrolled(host) };
    });
    if (!signed) return;
    // The verifier's nonces are lost on a restart; the host's signature time and nonces are not.
    const guard = { signed_at: Number(req.headers[TIMESTAMP_HEADER]), nonces: [String(req.headers[NONCE_HEADER])] };
    const byCredential = signed.signedBy < credentials.length;
    let maxSeq = highestSeq(store.rollout(signed.app));
    // Another node may have taken the step's SEQ a moment ago: the registry is asked before it is refused.
    if (Number((signed.value as { seq?: unknown }).seq) > maxSeq) {
      try {
        maxSeq = highestSeq(await store.latestRollout(signed.app));
      } catch (error) {
        this.options.onRefused?.('unavailable');
        return refuse(503, 'could not store it, try again', messageOf(error), retryLater());
      }
    }
    return this.accept(
      res,
      refuse,
      () => ({ ...checkReport(signed.value, this.now(), maxSeq), ...guard, enrolled: byCredential }),
      async ({ app, ...entry }) => {
        // A report older than the host's kept one is answered like any other: the host is done with it.
        // Reports come by the thousand a second from a large fleet: counted in /metrics, logged with
        // SHIPKIT_DEBUG only, except a failure, which someone will want to read.
        const maxHosts = this.options.maxHosts?.get(app) ?? Infinity;
        const outcome = await store.addReport(app, entry, { maxHosts });
        if (outcome === 'full') return fullRefusal(app, maxHosts);
        const refused = guardRefusal(app, entry.host, outcome);
        if (refused) return refused;
        const added = outcome === 'added';
        const fields = {
          app,
          host: entry.host,
          version: entry.version,
          result: entry.result,
          reason: entry.reason || undefined,
        };
        if (added && (entry.result === 'failed' || entry.result === 'rolled_back'))
          log.warn('fleet report: a host could not take a release', fields);
        else if (added) log.debug('fleet report', fields);
        if (!byCredential)
          log.info('fleet: a host enrolled (its credential is in the answer)', { app, host: entry.host });
        this.options.onReport?.(app, entry.result);
        return signed.signedBy === 0 ? {} : { credential: credentials[0] };
      },
    );
  }

  private async postRollout(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const signed = await this.readSigned(req, res, refuse);
    if (!signed) return;
    const { store, log } = this.options;
    return this.accept(
      res,
      refuse,
      () => checkRollout(signed.value, this.now()),
      async ({ app, ...rollout }) => {
        // Recorded first: a rollout kept but not recorded would be a repeat when it is sent again.
        const action = rolloutAction(store.rollout(app), rollout);
        if (action) {
          const { version, step, steps, percent, state, reason } = rollout;
          const detail = { version, step, steps: steps.length, percent, state, ...(reason ? { reason } : {}) };
          await this.options.record?.({ action, actor: 'fleet secret', from: clientOf(req), subject: app, detail });
        }
        await store.setRollout(app, rollout);
        log.info('fleet rollout', {
          app,
          version: rollout.version,
          step: `${rollout.step}/${rollout.steps.length}`,
          percent: rollout.percent,
          state: rollout.state,
          reason: rollout.reason || undefined,
        });
        return {};
      },
    );
  }

  /** `shipkit fleet forget`: named hosts, or those silent for N days, out of the registry; 200 with how many. */
  private async postForget(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const signed = await this.readSigned(req, res, refuse, undefined, MAX_FORGET_BYTES);
    if (!signed) return;
    const { store, log } = this.options;
    return this.accept(
      res,
      refuse,
      () => checkForget(signed.value),
      async (request) => {
        const silentBefore = 'hosts' in request ? Infinity : this.now() - request.silentForDays * DAY_MS;
        const hosts = 'hosts' in request ? request.hosts : store.silentSince(request.app, silentBefore);
        const forgotten = await store.forget(request.app, hosts, { silentBefore });
        const asked = 'hosts' in request ? { named: hosts.length } : { silent_for_days: request.silentForDays };
        await this.options.record?.({
          action: 'fleet.forget',
          actor: 'fleet secret',
          from: clientOf(req),
          subject: request.app,
          detail: { ...asked, forgotten },
        });
        log.info(`fleet: forgot ${forgotten} host${forgotten === 1 ? '' : 's'} (shipkit fleet forget)`, {
          app: request.app,
          ...asked,
        });
        return { forgotten };
      },
      200,
    );
  }

  /** Whether GET of `app`'s routes may be answered: signed with its secret (four-line form), or a session / the read token. */
  private mayRead(req: IncomingMessage, app: string, refuse: Refuse): boolean {
    const verifier = this.verifiers.get(app);
    if (!verifier) {
      refuse(404, 'unknown app');
      return false;
    }
    if (req.headers[SIGNATURE_HEADER] || !this.options.canRead?.(req)) {
      const secrets = this.options.secrets.get(app)!;
      const verdict = verifier.verify('GET', this.signedPaths(req), req.headers, { secrets });
      if (!verdict.ok) {
        refuse(401, 'unauthorized', `${app}: ${verdict.reason}`);
        return false;
      }
    }
    return true;
  }

  /**
   * Each host's bucket for the version a rollout asks about, kept between its polls: a sha256 per
   * host per poll was most of a count at 100,000 hosts. The last version asked per app only.
   */
  private bucketsOf(app: string, version: string): (host: string) => number {
    let kept = this.buckets.get(app);
    if (kept?.version !== version) this.buckets.set(app, (kept = { version, of: new Map() }));
    const of = kept.of;
    return (host) => {
      let bucket = of.get(host);
      if (bucket === undefined) of.set(host, (bucket = rolloutBucket(host, version)));
      return bucket;
    };
  }

  /** GET /fleet/APP: one page of the hosts (`?limit=&offset=`), or a step's counts (`?step=&version=`). */
  private getFleet(req: IncomingMessage, res: ServerResponse, app: string, refuse: Refuse): void {
    if (!this.mayRead(req, app, refuse)) return;
    const { store } = this.options;
    const asked = fleetQuery(new URL(req.url ?? '/', 'http://x').searchParams);
    if (typeof asked === 'string') return refuse(400, asked);
    // Counts need no order: 100,000 hosts are not sorted for them (0.3 s of the event loop).
    const hosts = store.hosts(app, { sorted: !('step' in asked) });
    const rollout = publicRollout(store.rollout(app));
    if ('step' in asked) {
      const bucketOf = this.bucketsOf(app, asked.version);
      const counts = countStep(hosts as FleetHost[], asked.version, asked.step, { stepSeq: asked.seq, bucketOf });
      return sendJson(res, 200, { app, total: hosts.length, rollout, counts });
    }
    const page = hosts.slice(asked.offset, asked.offset + asked.limit).map(publicHost);
    const next = asked.offset + page.length < hosts.length ? asked.offset + page.length : null;
    sendJson(res, 200, { app, total: hosts.length, offset: asked.offset, next_offset: next, hosts: page, rollout });
  }

  /** GET /fleet/APP/releases: the ledger's releases with their hosts (docs/fleet.md "Releases"). */
  private async getReleases(
    req: IncomingMessage,
    res: ServerResponse,
    app: string,
    url: URL,
    refuse: Refuse,
  ): Promise<void> {
    if (!this.mayRead(req, app, refuse)) return;
    if (!this.options.releases) return refuse(404, 'not found');
    const page = releasesPage(url.searchParams);
    if (typeof page === 'string') return refuse(400, page);
    const view = await this.options.releases(app, page);
    sendJson(res, 200, { ...view, rollout: publicRollout(this.options.store.rollout(app)) });
  }
}
