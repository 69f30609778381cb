// Reports to hook-server (docs/fleet.md): after every update attempt and once at start, signed
// with the host's own credential (.launchfit/report-key, handed out in the answer to its first
// report, which the app's report_secret signs). Sent in the background, 3 tries with backoff; a
// report never fails an update. The last outcome is kept in .launchfit/report.json for status.
import { backoffMs } from '../../core/retry.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RemoteError, ValidationError, VerificationError, ConfigError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { resolveSecret } from '../../core/secrets.ts';
import { signRequest } from '../../http/signing.ts';
import { reportBody, type Report, type ReportResult } from '../../release/format/fleet-report.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import type { DeployPaths } from '../deploy-folder/state.ts';
import type { CheckResult } from '../install/context.ts';
import { leanFetch } from '../../http/client.ts';

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

/** The host's own report credential, as hook-server handed it out. */
export function reportKeyFile(paths: Pick<DeployPaths, 'meta'>): string {
  return path.join(paths.meta, 'report-key');
}

async function readReportKey(paths: Pick<DeployPaths, 'meta'>): Promise<string | undefined> {
  const text = await readFile(reportKeyFile(paths), 'utf8').catch(() => '');
  return /^[0-9a-f]{64}$/.test(text.trim()) ? text.trim() : undefined;
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
  private readonly endedBadly = new Set<string>();
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
    // A version this host just rolled back or failed is skipped at the next poll as marked bad:
    // that says nothing new, and would replace the report that says why (hook-server keeps one).
    if (report.result === 'skipped' && this.endedBadly.has(report.version)) return;
    if (report.result === 'rolled_back' || report.result === 'failed') this.endedBadly.add(report.version);
    this.lastSent = key;
    this.queue = this.queue
      .then(() => this.deliver(config, target, report))
      .catch((error) => this.opts.log.warn(`report not sent: ${messageOf(error)}`));
  }

  idle(): Promise<void> {
    return this.queue;
  }

  private async deliver(config: LaunchConfig, target: { url: string; secret: string }, report: Report): Promise<void> {
    const { log, tries = 3, retryMs = 1000 } = this.opts;
    const body = reportBody(report);
    const url = new URL(target.url);
    // Its own credential once it has one; the app's secret enrols it (and again after a `fleet forget`).
    const own = await readReportKey(this.opts.paths);
    let keys = own ? [own, undefined] : [undefined];
    let problem = '';
    for (let attempt = 1; attempt <= tries; attempt++) {
      if (attempt > 1)
        await new Promise((r) => setTimeout(r, backoffMs(attempt - 1, { baseMs: retryMs, jitter: [0.5, 1] })));
      const key = keys[0] ?? (await this.appSecret(config, target));
      try {
        const res = await this.post(url, body, key);
        const text = await res.text();
        if (res.ok) {
          await this.keepCredential(text);
          return this.record({
            ok: true,
            result: report.result,
            version: report.version,
            message: `${res.status} from ${url.origin}${url.pathname}`,
          });
        }
        problem = `${url.origin}${url.pathname} answered ${res.status} ${text.slice(0, 200).replace(/\s+/g, ' ')}`;
        if (res.status === 401 && keys.length > 1) {
          keys = keys.slice(1); // its credential refused (the host was forgotten): enrol again
          attempt--;
          continue;
        }
        if (res.status >= 400 && res.status < 500 && res.status !== 429) break; // refused: trying again would be refused again
      } catch (error) {
        problem = `${url.origin}${url.pathname}: ${messageOf(error)}`;
      }
    }
    log.warn(`report (${report.result} ${report.version}) not taken: ${problem}; given up`);
    await this.record({ ok: false, result: report.result, version: report.version, message: problem });
  }

  private appSecret(config: LaunchConfig, target: { secret: string }): Promise<string> {
    return resolveSecret(target.secret, {
      baseDir: this.opts.paths.dir,
      where: `${config.file}: updates.report_secret`,
    });
  }

  private post(url: URL, body: string, key: string): Promise<Response> {
    return leanFetch(url, {
      method: 'POST',
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      headers: {
        'Content-Type': 'application/json',
        ...signRequest(key, 'POST', `${url.pathname}${url.search}`, { body }),
      },
    });
  }

  /** The credential hook-server hands out in its answer (on enrolment, or after a change of the app's secret). */
  private async keepCredential(answer: string): Promise<void> {
    let credential: unknown;
    try {
      credential = (JSON.parse(answer) as { credential?: unknown }).credential;
    } catch {
      return;
    }
    if (typeof credential !== 'string' || !/^[0-9a-f]{64}$/.test(credential)) return;
    await ensureDir(this.opts.paths.meta);
    await atomicWriteFile(reportKeyFile(this.opts.paths), `${credential}\n`, { mode: 0o600 });
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
