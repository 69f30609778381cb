// The master side of a fleet update: read the slave list, then send one signed
// `GET /?repo=NAME` to every target at once (bounded), with timeouts and retries.
import { backoffMs } from '../core/retry.ts';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import { addressOf, controlGet, controlGetTo } from '../http/control-client.ts';
import { signRequest } from '../http/signing.ts';

export interface Target {
  /** Normalised base URL without a trailing slash, e.g. `http://10.0.0.5:8080/hook`. */
  url: string;
  line: number;
}

/** The URL each target of a list was parsed to (parseSlaveList), so that its requests need not parse it again. */
const parsedUrls = new WeakMap<Target, URL>();

export const DEFAULT_LIST = '/etc/server-update/slavelist.txt';

/** Parse a slave list: one `http(s)://host:port[/path]` or `host:port` a line; `#` comments. */
export function parseSlaveList(text: string, file = 'slave list'): Target[] {
  const targets: Target[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (!line || line.startsWith('#')) return;
    const found = parseTarget(line);
    if (!found) {
      throw new ConfigError(
        `${file}:${index + 1}: ${JSON.stringify(line.slice(0, 80))} is not a target; write ` +
          `http://host:port[/path], https://host[:port][/path] or host:port.`,
      );
    }
    const { url, parsed } = found;
    if (seen.has(url)) return; // the same slave twice gets one request
    seen.add(url);
    const target = { url, line: index + 1 };
    parsedUrls.set(target, parsed);
    targets.push(target);
  });
  return targets;
}

function parseTarget(line: string): { url: string; parsed: URL } | undefined {
  if (/\s/.test(line)) return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(line)
    ? line
    : /^[^/:]+:\d+(\/.*)?$|^\[[0-9a-f:.]+\]:\d+(\/.*)?$/i.test(line)
      ? `http://${line}`
      : undefined;
  if (!withScheme) return undefined;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || !url.hostname) return undefined;
  return { url: `${url.origin}${url.pathname.replace(/\/+$/, '')}`, parsed: url };
}

export async function readSlaveList(file: string): Promise<Target[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT'
        ? `The slave list ${file} does not exist; pass --list FILE or set SERVER_UPDATE_LIST.`
        : `Cannot read the slave list ${file} (${code ?? error}).`,
      { cause: error },
    );
  }
  const targets = parseSlaveList(text, file);
  if (targets.length === 0)
    throw new ConfigError(`The slave list ${file} has no targets; add one http://host:port a line.`);
  return targets;
}

/** The path and query sent to a target (what the signature covers). */
export function requestPath(target: Target, repo: string, wait: boolean): string {
  return `${splitTarget(target.url).base}/?repo=${encodeURIComponent(repo)}${wait ? '&wait=1' : ''}`;
}

/**
 * A target's origin and base path. Its url is parseTarget's normal form (origin + path, no query,
 * no trailing slash), so the two are cut from the string: no URL parse per request.
 */
function splitTarget(url: string): { origin: string; base: string } {
  const slash = url.indexOf('/', url.indexOf('//') + 2);
  return slash < 0
    ? { origin: url, base: '' }
    : { origin: url.slice(0, slash), base: url.slice(slash).replace(/\/+$/, '') };
}

/** Milliseconds on a monotonic clock; process.hrtime, as `performance` loads perf_hooks (nine modules) on first use. */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface NotifyOptions {
  repo: string;
  secret?: string;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  wait: boolean;
  /** Called as each target finishes, in completion order. */
  onResult?: (result: TargetResult) => void;
  backoffMs?: number;
  /** Aborting it stops the fan-out: requests in flight end as `interrupted`, the rest are not sent. */
  signal?: AbortSignal;
  /**
   * A staged rollout takes each host's `&wait=1` answer as its verdict: a 500 ("rolled back") is
   * final and not retried; only 502/503/504 (a proxy or a host restarting) and connection errors are.
   */
  verdicts?: boolean;
}

export interface TargetResult {
  target: string;
  ok: boolean;
  status: number | null;
  ms: number;
  attempts: number;
  error?: string;
}

export async function notifyTargets(targets: Target[], options: NotifyOptions): Promise<TargetResult[]> {
  // notifyTarget turns every failure into a result; it does not throw.
  return mapLimit(targets, options.concurrency, async (target) => {
    const result = await notifyTarget(target, options);
    options.onResult?.(result);
    return result;
  });
}

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export async function notifyTarget(target: Target, options: NotifyOptions): Promise<TargetResult> {
  const pathAndQuery = requestPath(target, options.repo, options.wait);
  const url = splitTarget(target.url).origin + pathAndQuery;
  const started = monotonicMs();
  let attempts = 0;
  for (;;) {
    if (options.signal?.aborted)
      return {
        target: target.url,
        ok: false,
        status: null,
        ms: Math.round(monotonicMs() - started),
        attempts,
        error: attempts ? 'interrupted' : 'interrupted: not contacted',
      };
    attempts++;
    const headers: Record<string, string> = { 'User-Agent': 'shipkit-server-update', Accept: 'application/json' };
    if (options.secret) Object.assign(headers, signRequest(options.secret, 'GET', pathAndQuery));
    let status: number | null = null;
    let error: string | undefined;
    let retryable = false;
    try {
      const get = { headers, timeoutMs: options.timeoutMs, signal: options.signal };
      // The path and query sent are what the list's URL gave, so as a URL would give them back.
      const parsed = parsedUrls.get(target);
      const answer = await (parsed ? controlGetTo(addressOf(parsed, pathAndQuery), get) : controlGet(url, get));
      status = answer.status;
      if (status < 200 || status > 299) {
        error = describeHttpFailure(status, answer.body);
        retryable = options.verdicts ? status >= 502 && status <= 504 : status >= 500;
      }
    } catch (caught) {
      ({ error, retryable } = options.signal?.aborted
        ? { error: 'interrupted', retryable: false }
        : describeRequestError(caught, options.timeoutMs));
    }
    const ms = Math.round(monotonicMs() - started);
    if (!error) return { target: target.url, ok: true, status, ms, attempts };
    if (!retryable || attempts > options.retries) return { target: target.url, ok: false, status, ms, attempts, error };
    const wait = backoffMs(attempts, { baseMs: options.backoffMs ?? 200, jitter: [0.5, 1] });
    await new Promise((r) => setTimeout(r, wait));
  }
}

function describeHttpFailure(status: number, body: string): string {
  let detail = '';
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') detail = `: ${parsed.error.slice(0, 200)}`;
  } catch {
    /* not JSON */
  }
  if (status === 401) return `HTTP 401 unauthorized (is the shared secret the same on both sides?)${detail}`;
  return `HTTP ${status}${detail}`;
}

function describeRequestError(caught: unknown, timeoutMs: number): { error: string; retryable: boolean } {
  const err = caught as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError')
    return { error: `no answer within ${timeoutMs / 1000}s`, retryable: false };
  // node:http puts an errno code on the error itself, fetch in Node (undici) on its cause; Deno's
  // fetch only says it in the cause's message.
  const code = err?.code ?? err?.cause?.code;
  const detail = err?.cause?.message ?? (err?.code ? '' : (err?.message ?? ''));
  if (code === 'ECONNREFUSED' || /connection refused/i.test(detail))
    return { error: 'connection refused', retryable: true };
  if (code && RETRYABLE_CODES.has(code)) return { error: `connection error (${code})`, retryable: true };
  if (/connection reset|broken pipe|\(Connect\)/i.test(detail)) return { error: 'connection error', retryable: true };
  if (code === 'ENOTFOUND' || /dns error|failed to lookup/i.test(detail))
    return { error: 'host not found', retryable: false };
  if (code?.startsWith('HPE_') || /invalid|parse/i.test(detail))
    return { error: 'invalid HTTP response (is it a shipkit listener?)', retryable: false };
  return { error: err?.cause?.message ?? err?.message ?? String(caught), retryable: false };
}
