// Reports to hook-server (DESIGN §8, issue 23): with updates.report and updates.report_secret,
// `launchfit run` POSTs a signed JSON body after every update attempt handled to its end and once
// at start (result `running`), so the fleet registry knows each live host, its version and how
// its last update went. Signed as DESIGN §5 with the body line (lib/http/signing.ts). Sending is
// in the background: 3 tries with backoff and jitter, then a warning; an update never waits for
// it, and a report never fails one. The last outcome is kept in .launchfit/report.json for status.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RemoteError, ValidationError, VerificationError, ConfigError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { resolveSecret } from '../../core/secrets.ts';
import { signRequest } from '../../http/signing.ts';
import { rolloutBucket } from '../../release/rollout-bucket.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import type { DeployPaths } from '../deploy-folder/state.ts';
import type { CheckResult } from '../install/update.ts';

export const MAX_REPORT_BYTES = 4096;
export const MAX_REASON_CHARS = 500;
export type ReportResult = 'running' | 'updated' | 'rolled_back' | 'failed' | 'skipped';

export interface Report {
  app: string;
  host: string;
  version: string;
  previous?: string;
  seq?: number;
  result: ReportResult;
  reason?: string;
  seconds?: number;
}

/** The JSON body of the contract: bucket computed here (as rolloutBucket returns it), reason cut to 500 characters, at most 4096 bytes. */
export function reportBody(r: Report): string {
  const body = {
    app: r.app,
    host: r.host,
    version: r.version,
    previous: r.previous ?? '',
    seq: r.seq ?? 0,
    bucket: rolloutBucket(r.host, r.version), // full precision: hook-server compares it with its own
    result: r.result,
    reason: (r.reason ?? '').slice(0, MAX_REASON_CHARS),
    seconds: Math.round((r.seconds ?? 0) * 10) / 10,
  };
  let text = JSON.stringify(body);
  // Multi-byte reasons could still pass the cap: shorten until the body fits.
  while (Buffer.byteLength(text) > MAX_REPORT_BYTES && body.reason.length > 0) {
    body.reason = body.reason.slice(0, Math.max(0, body.reason.length - 50));
    text = JSON.stringify(body);
  }
  if (Buffer.byteLength(text) > MAX_REPORT_BYTES)
    throw new ValidationError(`A report is over ${MAX_REPORT_BYTES} bytes even without a reason.`);
  return text;
}

/** What a check's outcome is worth reporting as, or undefined (nothing new: not modified, up to date, waiting). */
export function reportOfCheck(
  result: CheckResult | undefined,
  error: unknown,
): { result: ReportResult; reason: string } | undefined {
  if (error !== undefined) {
    if (error instanceof RemoteError) return undefined; // the update server is down: there is nothing to report about a release
    if (error instanceof VerificationError || error instanceof ValidationError || error instanceof ConfigError)
      return { result: 'skipped', reason: messageOf(error) };
    return { result: 'failed', reason: messageOf(error) };
  }
  switch (result?.action) {
    case 'installed':
      return { result: 'updated', reason: '' };
    case 'unhealthy':
    case 'rolled-back':
      return { result: 'rolled_back', reason: result.message };
    case 'skipped-bad':
      return { result: 'skipped', reason: result.message };
    default:
      return undefined;
  }
}

export interface LastReport {
  at: string;
  ok: boolean;
  result: ReportResult;
  version: string;
  message: string;
}

export function lastReportFile(paths: Pick<DeployPaths, 'meta'>): string {
  return path.join(paths.meta, 'report.json');
}

export async function readLastReport(paths: Pick<DeployPaths, 'meta'>): Promise<LastReport | undefined> {
  try {
    return JSON.parse(await readFile(lastReportFile(paths), 'utf8')) as LastReport;
  } catch {
    return undefined;
  }
}

export interface ReporterOptions {
  paths: DeployPaths;
  log: Logger;
  tries?: number;
  /** The first retry's wait; doubled for each next one, with jitter. */
  retryMs?: number;
  timeoutMs?: number;
}

/** Sends reports one after another in the background; `idle()` settles when all have been tried. */
export class Reporter {
  private queue: Promise<void> = Promise.resolve();
  private lastSent = '';
  private readonly opts: ReporterOptions;
  constructor(opts: ReporterOptions) {
    this.opts = opts;
  }

  /** Queue a report (never throws, never waits). The same outcome twice in a row is sent once. */
  send(config: LaunchConfig, report: Report): void {
    const target = config.updates.report;
    if (!target) return;
    const key = JSON.stringify([report.result, report.version, report.seq, report.reason]);
    if (key === this.lastSent && report.result !== 'running') return;
    this.lastSent = key;
    this.queue = this.queue
      .then(() => this.deliver(config, target, report))
      .catch((error) => this.opts.log.warn(`report not sent: ${messageOf(error)}`));
  }

  idle(): Promise<void> {
    return this.queue;
  }

  private async deliver(config: LaunchConfig, target: { url: string; secret: string }, report: Report): Promise<void> {
    const { log, tries = 3, retryMs = 1000, timeoutMs = 10_000 } = this.opts;
    const secret = await resolveSecret(target.secret, {
      baseDir: this.opts.paths.dir,
      where: `${config.file}: updates.report_secret`,
    });
    const body = reportBody(report);
    const url = new URL(target.url);
    let problem = '';
    for (let attempt = 1; attempt <= tries; attempt++) {
      if (attempt > 1)
        await new Promise((r) => setTimeout(r, retryMs * 2 ** (attempt - 2) * (0.5 + Math.random() * 0.5)));
      try {
        const res = await fetch(url, {
          method: 'POST',
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(timeoutMs),
          headers: {
            'Content-Type': 'application/json',
            ...signRequest(secret, 'POST', `${url.pathname}${url.search}`, { body }),
          },
        });
        const text = (await res.text()).slice(0, 200);
        if (res.ok)
          return this.record({
            ok: true,
            result: report.result,
            version: report.version,
            message: `${res.status} from ${url.origin}${url.pathname}`,
          });
        problem = `${url.origin}${url.pathname} answered ${res.status} ${text.replace(/\s+/g, ' ')}`;
        if (res.status >= 400 && res.status < 500 && res.status !== 429) break; // refused: trying again would be refused again
      } catch (error) {
        problem = `${url.origin}${url.pathname}: ${messageOf(error)}`;
      }
    }
    log.warn(`report (${report.result} ${report.version}) not taken: ${problem}; given up`);
    await this.record({ ok: false, result: report.result, version: report.version, message: problem });
  }

  private async record(last: Omit<LastReport, 'at'>): Promise<void> {
    await ensureDir(this.opts.paths.meta)
      .then(() =>
        atomicWriteFile(
          lastReportFile(this.opts.paths),
          `${JSON.stringify({ at: new Date().toISOString(), ...last })}\n`,
        ),
      )
      .catch((error) => this.opts.log.warn(`could not record the last report: ${messageOf(error)}`));
  }
}
