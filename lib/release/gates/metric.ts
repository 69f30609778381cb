// An environment's Prometheus metric gates (docs/environments.md): after each rollout step every
// gate's instant query must stay at or below its max for its `for:`. A reading over max halts the
// step and rolls it back; a gate that cannot be read (down, slow, garbage, no single finite value)
// never passes: it holds the step, its clock restarted, until the caller's deadline.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { messageOf } from '../../core/errors.ts';
import { leanFetch } from '../../http/client.ts';
import { readAtMost } from '../../http/read-at-most.ts';

/** An instant query of one series answers in a few hundred bytes; more than this is not one. */
const MAX_ANSWER = 1024 * 1024;
const GATE_KEYS = ['prometheus', 'query', 'max', 'for'];
const FOR_UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600 };
/** A gate held longer than this is a typo (`for: 60h`), not a rollout step. */
const MAX_FOR_SEC = 24 * 3_600;

export interface MetricGate {
  /** Prometheus's base URL (http or https), without a trailing slash; /api/v1/query is added. */
  prometheus: string;
  /** PromQL, sent as written; it must give one series or a scalar. */
  query: string;
  /** The highest value that passes. */
  max: number;
  /** How long every reading must stay at or below max, in seconds. */
  forSec: number;
  /** As written, for messages: the query. */
  text: string;
}

export type GateReading =
  { kind: 'ok'; value: number } | { kind: 'over'; value: number } | { kind: 'unreadable'; why: string };

export type GateOutcome = { pass: true; readings: string[] } | { pass: false; rollback: boolean; reason: string };

/** One `gates:` entry: { prometheus, query, max, for }. Throws naming the problem; the caller adds FILE:LINE. */
export function parseGate(raw: unknown): MetricGate {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new Error(
      `must be a mapping such as { prometheus: http://127.0.0.1:9090, query: …, max: 0.01, for: 60s }, not ${shown(raw)}.`,
    );
  const entry = raw as Record<string, unknown>;
  const unknown = Object.keys(entry).filter((key) => !GATE_KEYS.includes(key));
  if (unknown.length)
    throw new Error(
      `has unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: a gate takes prometheus, query, max and for.`,
    );
  const prometheus = prometheusUrl(entry.prometheus);
  const query = entry.query;
  if (typeof query !== 'string' || !query.trim())
    throw new Error(
      `query: must be the PromQL to ask, such as sum(rate(…[1m])) / sum(rate(…[1m])), not ${shown(query)}.`,
    );
  if (typeof entry.max !== 'number' || !Number.isFinite(entry.max))
    throw new Error(`max: must be a number, such as 0.01 (the highest value that passes), not ${shown(entry.max)}.`);
  return { prometheus, query, max: entry.max, forSec: forSeconds(entry.for), text: query.trim() };
}

function prometheusUrl(value: unknown): string {
  if (value === undefined)
    throw new Error("prometheus: is missing: give Prometheus's URL, such as http://127.0.0.1:9090.");
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new Error(`prometheus: must be an http(s) URL such as http://127.0.0.1:9090, not ${shown(value)}.`);
  if (url.username || url.password)
    throw new Error('prometheus: must not hold a user or password: the URL is shown in every message about the gate.');
  if (url.search || url.hash)
    throw new Error(
      `prometheus: must be Prometheus's base URL without ?… or #… (/api/v1/query is added), not ${shown(value)}.`,
    );
  return (value as string).replace(/\/+$/, '');
}

function forSeconds(value: unknown): number {
  if (value === undefined) return 0;
  const m = typeof value === 'string' ? /^(\d{1,6})([smh])$/.exec(value.trim()) : null;
  const sec = m ? Number(m[1]) * FOR_UNITS[m[2]] : NaN;
  if (!(sec <= MAX_FOR_SEC))
    throw new Error(`for: must be a duration such as 60s, 2m or 0s, at most 24h, not ${shown(value)}.`);
  return sec;
}

/** A value as the operator wrote it, short. */
function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The gate's value now: GET /api/v1/query (an instant query), at most `timeoutMs` (default 5 s) for
 * the whole answer. Every failure to read it is an `unreadable` reading; only `signal` throws.
 */
export async function readGate(
  gate: MetricGate,
  opts: { fetch?: typeof globalThis.fetch; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<GateReading> {
  const url = new URL('api/v1/query', `${gate.prometheus}/`);
  url.searchParams.set('query', gate.query);
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  let status: number;
  let body: Buffer;
  try {
    const response = await (opts.fetch ?? leanFetch)(url, {
      headers: { accept: 'application/json' },
      signal: opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout,
    });
    status = response.status;
    body = await readAtMost(response.body, MAX_ANSWER + 1);
  } catch (error) {
    opts.signal?.throwIfAborted();
    if (timeout.aborted)
      return unreadable(`Prometheus at ${gate.prometheus} did not answer within ${timeoutMs / 1000} s`);
    const cause = (error as { cause?: unknown }).cause;
    const why = cause === undefined ? messageOf(error) : `${messageOf(error)}: ${messageOf(cause)}`;
    return unreadable(`Prometheus at ${gate.prometheus} could not be reached (${why})`);
  }
  const value = valueOfAnswer(status, body);
  if (typeof value === 'string') return unreadable(`Prometheus at ${gate.prometheus} ${value}`);
  return value <= gate.max ? { kind: 'ok', value } : { kind: 'over', value };
}

const unreadable = (why: string): GateReading => ({ kind: 'unreadable', why });

interface QueryAnswer {
  status?: unknown;
  error?: unknown;
  data?: { resultType?: unknown; result?: unknown };
}

/** The one value an answer gives, or what is wrong with it (a phrase after "Prometheus at URL"). */
function valueOfAnswer(status: number, body: Buffer): number | string {
  if (body.length > MAX_ANSWER) return `answered more than ${MAX_ANSWER / 1024 / 1024} MB`;
  let answer: QueryAnswer | undefined;
  try {
    answer = JSON.parse(body.toString('utf8')) as QueryAnswer;
  } catch {
    answer = undefined;
  }
  // Prometheus's own words (a parse error in the query, a timeout), on one line.
  const error = typeof answer?.error === 'string' ? `: ${answer.error.replace(/\s+/g, ' ').slice(0, 300)}` : '';
  if (status !== 200) return `answered ${status}${error}`;
  if (typeof answer !== 'object' || answer === null) return 'answered something other than JSON';
  if (answer.status !== 'success') return `answered status ${shown(answer.status)}${error}`;
  const { resultType, result } = answer.data ?? {};
  if (resultType === 'scalar') return sampleValue(Array.isArray(result) ? result[1] : undefined);
  if (resultType !== 'vector' || !Array.isArray(result))
    return `answered a ${shown(resultType)} result: a gate's query must give one series or a scalar`;
  if (result.length === 0)
    return 'answered an empty vector: the query matched no series (check its metric names and labels, and that they are scraped)';
  if (result.length > 1) {
    const some = result.slice(0, 3).map((series: { metric?: unknown }) => seriesName(series.metric));
    return (
      `answered ${result.length} series (${some.join(', ')}${result.length > 3 ? ', …' : ''}), not one: ` +
      'which one the gate means is ambiguous; aggregate them (sum, max) into one'
    );
  }
  return sampleValue((result[0] as { value?: unknown[] })?.value?.[1]);
}

/** A sample's value as Prometheus writes it ("0.002", "NaN", "+Inf"), or what is wrong with it. */
function sampleValue(text: unknown): number | string {
  if (typeof text !== 'string') return 'answered a result without a sample value';
  if (text === 'NaN') return 'answered NaN (0/0: is there no traffic to divide by?)';
  if (/^[+-]?Inf$/.test(text)) return `answered ${text} (a division by zero?)`;
  const value = Number(text);
  return text.trim() !== '' && Number.isFinite(value) ? value : `answered the value ${shown(text)}, not a number`;
}

function seriesName(metric: unknown): string {
  const labels = Object.entries(typeof metric === 'object' && metric !== null ? metric : {});
  return `{${labels.map(([name, value]) => `${name}=${JSON.stringify(value)}`).join(',')}}`.slice(0, 100);
}

/** One gate as a hold follows it: since when its readings are good, its last reading and what was shown of it. */
interface Hold {
  gate: MetricGate;
  goodSince?: number;
  last?: GateReading;
  shown?: string;
}

export interface HoldOptions {
  /** When (ms since the epoch) a gate that still cannot be read fails the step (without rollback). */
  deadline: number;
  /** Between two rounds of queries; default 2000. */
  pollMs?: number;
  /** Each query's bound (readGate's timeoutMs); default 5000. */
  timeoutMs?: number;
  print: (line: string) => void;
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Asks every gate each pollMs until all have read at or below their max for their whole `for:`
 * (pass), one reads over (fail, rollback), or one still cannot be read at the deadline (fail, no
 * rollback). A gate that cannot be read starts its `for:` again; good readings hold past the
 * deadline. Throws only when `signal` aborts.
 */
export async function holdGates(gates: MetricGate[], opts: HoldOptions): Promise<GateOutcome> {
  if (gates.length === 0) return { pass: true, readings: [] };
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => sleepFor(ms, undefined, { signal: opts.signal }));
  const signal = opts.signal;
  const holds: Hold[] = gates.map((gate) => ({ gate }));
  for (;;) {
    const at = now();
    const readings = await Promise.all(
      gates.map((gate) => readGate(gate, { fetch: opts.fetch, signal, timeoutMs: opts.timeoutMs })),
    );
    for (const [i, reading] of readings.entries()) {
      const hold = holds[i];
      hold.last = reading;
      hold.goodSince = reading.kind === 'ok' ? (hold.goodSince ?? at) : undefined;
      const shown = reading.kind === 'unreadable' ? reading.why : `${reading.kind} ${reading.value}`;
      if (shown !== hold.shown) opts.print(describeReading(hold, at, opts.deadline));
      hold.shown = shown;
      if (reading.kind === 'over') return { pass: false, rollback: true, reason: overReason(hold.gate, reading.value) };
    }
    const unread = holds.filter((h) => h.last?.kind === 'unreadable');
    if (unread.length === 0 && holds.every((h) => at - h.goodSince! >= h.gate.forSec * 1000))
      return { pass: true, readings: holds.map((h) => describeReading(h, at, opts.deadline)) };
    if (unread.length && now() >= opts.deadline)
      return { pass: false, rollback: false, reason: unreadableReason(unread) };
    // Aborted, it throws the signal's reason, as readGate does (not the timer's AbortError).
    await sleep(Math.max(0, nextRound(holds, at, opts.pollMs ?? 2_000, opts.deadline) - now())).catch((error) => {
      signal?.throwIfAborted();
      throw error;
    });
    signal?.throwIfAborted();
  }
}

/** When to ask next: pollMs after this round, or sooner when a gate's `for:` completes or the deadline comes. */
function nextRound(holds: Hold[], at: number, pollMs: number, deadline: number): number {
  let next = at + pollMs;
  for (const hold of holds) {
    const due = hold.goodSince === undefined ? deadline : hold.goodSince + hold.gate.forSec * 1000;
    if (due > at) next = Math.min(next, due);
  }
  return next;
}

/** `gate "QUERY": 0.002 ≤ 0.01, held 12 s of 60 s`, or why it is over or cannot be read. */
function describeReading(hold: Hold, at: number, deadline: number): string {
  const { gate, last } = hold;
  const name = `gate "${gate.text}"`;
  if (last?.kind === 'over') return `${name}: ${last.value} > ${gate.max}, over its max`;
  if (last?.kind === 'unreadable') {
    const left = Math.max(0, Math.ceil((deadline - at) / 1000));
    return `${name}: cannot be read: ${last.why}; not held, asking again for up to ${left} s`;
  }
  const held = Math.min(Math.floor((at - hold.goodSince!) / 1000), gate.forSec);
  return `${name}: ${last?.value} ≤ ${gate.max}, held ${held} s of ${gate.forSec} s`;
}

function overReason(gate: MetricGate, value: number): string {
  return `gate "${gate.text}" read ${value}, over its max ${gate.max} (Prometheus at ${gate.prometheus})`;
}

function unreadableReason(unread: Hold[]): string {
  return unread
    .map((h) => `gate "${h.gate.text}" could not be read before the deadline: ${(h.last as { why: string }).why}`)
    .join('; ');
}
