// One POST of JSON to a receiver we do not trust (a notification, a commit status; a PATCH or PUT
// when a forge edits a comment): no redirects followed, a timeout for the whole exchange, at most
// 64 KB of the answer read. Says whether trying again may help. The URL is never part of what it
// returns (a Slack URL is a secret).
import { readAtMost } from '../http/read-at-most.ts';
import { leanFetch } from '../http/client.ts';

export const MAX_ANSWER_BYTES = 64 * 1024;

export interface PostResult {
  ok: boolean;
  /** A retry may succeed (connection error, timeout, 408, 429, 5xx). */
  retry: boolean;
  /** Short, URL-free: `answered 500`, `timed out after 10 s`, … */
  detail: string;
  /** Bytes of the answer read (at most MAX_ANSWER_BYTES). */
  read: number;
  /** The HTTP status, when there was an answer. */
  status?: number;
  /** What a 429 or 503's Retry-After asked for, in ms (seconds or an HTTP date). */
  retryAfterMs?: number;
  /** Not sent: this hook-server no longer leads those of its database; the leader sends it. */
  notLeading?: boolean;
  /** The answer's text, with `keepAnswer` (a created comment's id is in it). */
  answer?: string;
}

export interface PostOptions {
  timeoutMs: number;
  /** Aborts the request (hook-server stopping). */
  signal?: AbortSignal;
  /** POST unless told: a forge edits a comment with PATCH (GitHub, Gitea) or PUT (GitLab). */
  method?: 'POST' | 'PATCH' | 'PUT';
  /** Return the answer's text (at most MAX_ANSWER_BYTES) as `answer`. */
  keepAnswer?: boolean;
}

export async function postJson(
  url: URL,
  body: string,
  headers: Record<string, string>,
  { timeoutMs, signal, method = 'POST', keepAnswer = false }: PostOptions,
): Promise<PostResult> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const both = signal ? AbortSignal.any([timeout, signal]) : timeout;
  let read = 0;
  let answer: string | undefined;
  try {
    const res = await leanFetch(url, {
      method,
      body,
      headers: { 'Content-Type': 'application/json', 'User-Agent': 'shipkit-notify', ...headers },
      redirect: 'manual',
      signal: both,
    });
    const bytes = await readAtMost(res.body, MAX_ANSWER_BYTES);
    read = bytes.byteLength;
    if (keepAnswer) answer = bytes.toString('utf8');
    if (res.status >= 200 && res.status < 300)
      return { ok: true, retry: false, detail: `answered ${res.status}`, read, status: res.status, answer };
    if (res.status >= 300 && res.status < 400)
      return {
        ok: false,
        retry: false,
        detail: `redirected (${res.status}); redirects are not followed, configure the final URL`,
        read,
        status: res.status,
      };
    const retry = res.status === 408 || res.status === 429 || res.status >= 500;
    return {
      ok: false,
      retry,
      detail: `answered ${res.status}`,
      read,
      status: res.status,
      retryAfterMs: retryAfterOf(res.headers.get('retry-after')),
      answer,
    };
  } catch (error) {
    if (timeout.aborted) return { ok: false, retry: true, detail: `timed out after ${timeoutMs / 1000} s`, read };
    if (signal?.aborted) return { ok: false, retry: false, detail: 'cancelled: hook-server is stopping', read };
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, retry: true, detail: `could not connect (${cause?.code ?? (error as Error).name})`, read };
  }
}

/** Retry-After as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfterOf(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
