// hook-server's fleet routes (issue 23, DESIGN §8 "Pull rollout"):
//   POST /fleet/reports    a launchfit host's report after an update (and once at start)
//   POST /fleet/rollouts   `release rollout`'s current step and state
//   GET  /fleet/APP        every host's latest report and the rollout, for `release rollout`
// Each app of shipkit.yml's `fleet:` block has its own secret; requests are signed as DESIGN §5
// (a POST also signs hex(sha256(body))), with the app named in the body. The body is capped at
// 4 KiB before it is parsed, a nonce is taken once, and a refused request is counted only as a
// refusal. A report is on disk (lib/fleet/fleet-store.ts) before its 202.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { HttpError, readBody, sendJson } from '../http/server.ts';
import { createRequestVerifier, sha256Hex, SIGNATURE_HEADER } from '../http/signing.ts';
import type { FleetStore } from '../fleet/fleet-store.ts';
import {
  checkReport,
  checkRollout,
  MAX_REPORT_BYTES,
  type HostEntry,
  type RolloutRecord,
} from '../fleet/report-registry.ts';
import type { Refuse } from '../web/read-sources.ts';

const BODY_TIMEOUT_MS = 10_000;

/** Why a fleet request was refused, as /metrics labels it. */
export type RefusalReason =
  'too_large' | 'malformed' | 'unknown_app' | 'bad_signature' | 'replay' | 'stale' | 'unavailable';

export interface FleetRoutesOptions {
  /** Each app's fleet secret (shipkit.yml `fleet:`), resolved. */
  secrets: ReadonlyMap<string, string>;
  store: FleetStore;
  /** The path of `public_url:` (a proxy's prefix): a sender may have signed the path with it. */
  base: string;
  log: Logger;
  /** A status-page session or the read token opens GET /fleet/APP too. */
  canRead?: (req: IncomingMessage) => boolean;
  onReport?: (app: string, result: string) => void;
  onRefused?: (reason: RefusalReason) => void;
  now?: () => number;
}

/** A host's entry as GET /fleet/APP shows it (times as ISO strings). */
export function publicHost(entry: HostEntry) {
  return { ...entry, at: new Date(entry.at).toISOString() };
}

export function publicRollout(rollout: RolloutRecord | null) {
  if (!rollout) return null;
  const { received, ...rest } = rollout;
  return { ...rest, received: new Date(received).toISOString() };
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
  private readonly verifiers: Map<string, ReturnType<typeof createRequestVerifier>>;

  constructor(options: FleetRoutesOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.verifiers = new Map(
      [...options.secrets].map(([app, secret]) => [app, createRequestVerifier(secret, { now: this.now })]),
    );
  }

  /** Answers the request when it is a /fleet/ route; false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean> {
    const route = url.pathname;
    if (!route.startsWith('/fleet/')) return false;
    const rest = route.slice('/fleet/'.length);
    if (req.method === 'POST' && (rest === 'reports' || rest === 'rollouts')) {
      await (rest === 'reports' ? this.postReport(req, res, refuse) : this.postRollout(req, res, refuse));
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      // App names are plain (lib/core/names.ts): a path that needs decoding names none.
      if (!/^[A-Za-z0-9._-]+$/.test(rest)) refuse(404, 'not found');
      else this.getFleet(req, res, rest, refuse);
    } else {
      refuse(405, 'method not allowed', undefined, {
        Allow: rest === 'reports' || rest === 'rollouts' ? 'POST' : 'GET, HEAD',
      });
    }
    return true;
  }

  private signedPaths(req: IncomingMessage): string[] {
    const sent = req.url ?? '/';
    return this.options.base ? [sent, this.options.base + sent] : [sent];
  }

  /** The body read under its cap, parsed, and its signature verified with the secret of the app it names. */
  private async readSigned(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
  ): Promise<{ app: string; value: unknown } | undefined> {
    const refused = (reason: RefusalReason, status: number, message: string, detail?: string) => {
      this.options.onRefused?.(reason);
      refuse(status, message, detail);
      return undefined;
    };
    let body: Buffer;
    try {
      body = await readBody(req, { res, limit: MAX_REPORT_BYTES, timeoutMs: BODY_TIMEOUT_MS });
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      return refused(
        status === 413 ? 'too_large' : 'malformed',
        status,
        status === 413 ? 'body too large' : 'could not read body',
        messageOf(error),
      );
    }
    if (!req.headers[SIGNATURE_HEADER])
      return refused('bad_signature', 401, 'unauthorized', 'missing signature headers');
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return refused('malformed', 400, 'body is not JSON');
    }
    const app = (value as { app?: unknown } | null)?.app;
    if (typeof app !== 'string') return refused('malformed', 400, 'app is missing');
    const verifier = this.verifiers.get(app);
    if (!verifier)
      return refused('unknown_app', 404, 'unknown app', `no fleet: entry for ${JSON.stringify(app.slice(0, 100))}`);
    const verdict = verifier.verify('POST', this.signedPaths(req), req.headers, { bodySha256: sha256Hex(body) });
    if (!verdict.ok) return refused(refusalOf(verdict.reason), 401, 'unauthorized', `${app}: ${verdict.reason}`);
    return { app, value };
  }

  /** Checked by `check`, then kept; 400 for a body the contract refuses, 503 when it cannot be written. */
  private async accept<T>(
    res: ServerResponse,
    refuse: Refuse,
    check: () => T,
    keep: (value: T) => Promise<unknown>,
  ): Promise<void> {
    let value: T;
    try {
      value = check();
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      this.options.onRefused?.('malformed');
      return refuse(400, error.message);
    }
    try {
      await keep(value);
    } catch (error) {
      this.options.onRefused?.('unavailable');
      return refuse(503, 'could not store it, try again', (error as NodeJS.ErrnoException).code ?? messageOf(error));
    }
    sendJson(res, 202, { ok: true });
  }

  private async postReport(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const signed = await this.readSigned(req, res, refuse);
    if (!signed) return;
    const { store, log } = this.options;
    return this.accept(
      res,
      refuse,
      () => checkReport(signed.value, this.now()),
      async ({ app, ...entry }) => {
        // A report older than the host's kept one is answered like any other: the host is done with it.
        // Reports come by the thousand a second from a large fleet: counted in /metrics, logged with
        // SHIPKIT_DEBUG only, except a failure, which someone will want to read.
        const kept = await store.addReport(app, entry);
        const fields = {
          app,
          host: entry.host,
          version: entry.version,
          result: entry.result,
          reason: entry.reason || undefined,
        };
        if (kept && (entry.result === 'failed' || entry.result === 'rolled_back'))
          log.warn('fleet report: a host could not take a release', fields);
        else if (kept) log.debug('fleet report', fields);
        this.options.onReport?.(app, entry.result);
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
        await store.setRollout(app, rollout);
        log.info('fleet rollout', {
          app,
          version: rollout.version,
          step: `${rollout.step}/${rollout.steps.length}`,
          percent: rollout.percent,
          state: rollout.state,
          reason: rollout.reason || undefined,
        });
      },
    );
  }

  /** Signed with the app's secret (four-line form), or a status-page session / the read token. */
  private getFleet(req: IncomingMessage, res: ServerResponse, app: string, refuse: Refuse): void {
    const verifier = this.verifiers.get(app);
    if (!verifier) return refuse(404, 'unknown app');
    if (req.headers[SIGNATURE_HEADER] || !this.options.canRead?.(req)) {
      const verdict = verifier.verify('GET', this.signedPaths(req), req.headers);
      if (!verdict.ok) return refuse(401, 'unauthorized', `${app}: ${verdict.reason}`);
    }
    const { store } = this.options;
    sendJson(res, 200, { app, hosts: store.hosts(app).map(publicHost), rollout: publicRollout(store.rollout(app)) });
  }
}
