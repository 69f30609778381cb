// An environment's deploy windows (docs/environments.md): `windows:` entries that allow or deny a
// rollout at wall-clock times of an IANA zone (weekly, daily, dated, or a cron start plus a
// duration). Deny wins; with allow entries only their times are open. A local time in a DST gap
// means the first instant after it, one that happens twice its first occurrence.
import { Cron } from 'croner';
import { ConfigError, messageOf } from '../../core/errors.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** How far ahead windowVerdict looks for the instant it opens or closes. */
const HORIZON = 14 * DAY;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const FULL_DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const FORMS =
  '"Fri 15:00 - Mon 08:00", "Mon-Thu 09:00 - 17:00", "09:00 - 17:00" or "2026-12-24 00:00 - 2026-12-27 00:00"';

/** When a window is active, in its zone. Minutes are of the local day; days count from Monday = 0. */
export type WindowSchedule =
  /** From `start` on each of `days` to `end` on the day `spanDays` later. */
  | { type: 'weekly'; days: number[]; start: number; end: number; spanDays: number }
  /** From one instant to another (ms since the epoch), worked out when parsed. */
  | { type: 'dated'; start: number; end: number }
  /** From each fire time of a 5-field cron for `durationMs` of real time. */
  | { type: 'cron'; cron: Cron; durationMs: number };

export interface DeployWindow {
  kind: 'allow' | 'deny';
  /** as written, for messages */
  text: string;
  /** an IANA time zone; "UTC" when the entry names none */
  tz: string;
  schedule: WindowSchedule;
}

export type WindowVerdict =
  | { open: true; /** when it next closes, if within 14 days */ closesAt?: Date }
  | { open: false; reason: string; /** the first instant it is open again, if within 14 days */ opensAt?: Date };

interface Interval {
  start: number;
  end: number;
}

/**
 * One entry of `windows:`: `{ allow: WHEN, tz: ZONE }` or `{ deny: WHEN, tz: ZONE }`, WHEN a string
 * in one of the FORMS or `{ cron: "0 22 * * *", duration: 8h }`; tz defaults to UTC. Throws
 * ConfigError naming the problem; the caller adds where the entry is.
 */
export function parseWindow(raw: unknown): DeployWindow {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError(`a window must be a mapping like { deny: "Fri 15:00 - Mon 08:00", tz: Europe/Berlin }`);
  const entry = raw as Record<string, unknown>;
  const unknown = Object.keys(entry).filter((k) => !['allow', 'deny', 'tz'].includes(k));
  if (unknown.length)
    throw new ConfigError(`unknown key ${JSON.stringify(unknown[0])} in a window; use allow:, deny: and tz:`);
  if ('allow' in entry && 'deny' in entry)
    throw new ConfigError('a window has both allow and deny; give each its own entry');
  if (!('allow' in entry) && !('deny' in entry))
    throw new ConfigError('a window needs allow: or deny: (e.g. deny: "Fri 15:00 - Mon 08:00")');
  const kind = 'allow' in entry ? 'allow' : 'deny';
  const tz = entry.tz === undefined ? 'UTC' : checkTimeZone(entry.tz);
  const value = entry[kind];
  if (typeof value === 'string') return { kind, tz, text: value.trim(), schedule: parseWhen(value, kind, tz) };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { text, schedule } = parseCronWindow(value as Record<string, unknown>, tz);
    return { kind, tz, text, schedule };
  }
  throw new ConfigError(`${kind}: must be a window like ${FORMS}, or { cron: "0 22 * * *", duration: 8h }`);
}

function checkTimeZone(tz: unknown): string {
  if (typeof tz === 'string' && tz.trim() !== '') {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return tz;
    } catch {
      // not a zone Intl knows: said below
    }
  }
  throw new ConfigError(
    `tz ${JSON.stringify(tz)} is not an IANA time zone; write one like Europe/Berlin, America/New_York or UTC`,
  );
}

/** A window written as a string: weekly, daily on some days, every day, or between two dates. */
function parseWhen(value: string, kind: string, tz: string): WindowSchedule {
  const text = value.trim().replace(/\s+/g, ' ');
  if (text === '') throw new ConfigError(`${kind}: is empty; give a window like ${FORMS}`);
  const fail = (why: string): never => {
    throw new ConfigError(`${JSON.stringify(text)}: ${why}`);
  };
  const dated = /^(\d{4}-\d{1,2}-\d{1,2}) ([\d:]+) ?- ?(\d{4}-\d{1,2}-\d{1,2}) ([\d:]+)$/.exec(text);
  if (dated) {
    const start = localToUtc(localDate(dated[1], fail) + datedClock(dated[2], fail), tz);
    const end = localToUtc(localDate(dated[3], fail) + datedClock(dated[4], fail), tz);
    if (end <= start) fail('must end after it starts');
    return { type: 'dated', start, end };
  }
  const weekly = /^([a-z]+) ([\d:]+) ?- ?([a-z]+) ([\d:]+)$/i.exec(text);
  if (weekly) {
    const [from, to] = [weekDay(weekly[1], fail), weekDay(weekly[3], fail)];
    const [start, end] = [clock(weekly[2], fail), clock(weekly[4], fail)];
    if (from === to && start === end) fail('starts and ends at the same time');
    const spanDays = (to - from + 7) % 7 || (end < start ? 7 : 0);
    return { type: 'weekly', days: [from], start, end, spanDays };
  }
  const daily = /^(?:([a-z]+)(?: ?- ?([a-z]+))? )?([\d:]+) ?- ?([\d:]+)$/i.exec(text);
  if (daily) {
    const first = daily[1] === undefined ? 0 : weekDay(daily[1], fail);
    const last = daily[1] === undefined ? 6 : weekDay(daily[2] ?? daily[1], fail);
    const [start, end] = [clock(daily[3], fail), clock(daily[4], fail)];
    if (start === end) fail('starts and ends at the same time');
    const days = Array.from({ length: ((last - first + 7) % 7) + 1 }, (_, i) => (first + i) % 7);
    return { type: 'weekly', days, start, end, spanDays: end < start ? 1 : 0 };
  }
  if (/\d:\d\d\b.*\d:\d\d/.test(text) && !/:\d\d ?-/.test(text))
    fail(`needs a dash between its start and its end, as in ${FORMS}`);
  return fail(`is not a window; write it as ${FORMS}`);
}

/** `HH:MM` → minutes of the day. */
function clock(token: string, fail: (why: string) => never): number {
  const m = /^(\d{1,2}):(\d\d)$/.exec(token);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) fail(`${token} is not a time (00:00 to 23:59)`);
  return Number(m![1]) * 60 + Number(m![2]);
}

/** A dated edge's time, `HH:MM` or `HH:MM:SS` → milliseconds of the day. */
function datedClock(token: string, fail: (why: string) => never): number {
  const m = /^(\d{1,2}:\d\d)(?::(\d\d))?$/.exec(token);
  if (m?.[2] !== undefined && Number(m[2]) > 59) fail(`${token} is not a time (00:00:00 to 23:59:59)`);
  return clock(m?.[1] ?? token, fail) * MIN + Number(m?.[2] ?? 0) * 1000;
}

function weekDay(word: string, fail: (why: string) => never): number {
  const lower = word.toLowerCase();
  const index = DAYS.findIndex((d, i) => d === lower || FULL_DAYS[i] === lower);
  if (index < 0) fail(`${word} is not a day (Mon Tue Wed Thu Fri Sat Sun)`);
  return index;
}

/** `YYYY-MM-DD` → its midnight as local ms (a wall-clock time written as if UTC). */
function localDate(token: string, fail: (why: string) => never): number {
  const [y, m, d] = token.split('-').map(Number);
  const ms = Date.UTC(y, m - 1, d);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== m - 1 || back.getUTCDate() !== d)
    fail(`${token} is not a date`);
  return ms;
}

function parseCronWindow(value: Record<string, unknown>, tz: string): { text: string; schedule: WindowSchedule } {
  const unknown = Object.keys(value).filter((k) => k !== 'cron' && k !== 'duration');
  if (unknown.length)
    throw new ConfigError(`unknown key ${JSON.stringify(unknown[0])} in a cron window; use cron: and duration:`);
  const pattern = typeof value.cron === 'string' ? value.cron.trim().replace(/\s+/g, ' ') : '';
  if (pattern === '')
    throw new ConfigError('a cron window needs cron: "MINUTE HOUR DAY MONTH WEEKDAY" (e.g. "0 22 * * *")');
  const fields = pattern.split(' ').length;
  if (fields !== 5 && !pattern.startsWith('@'))
    throw new ConfigError(
      `cron ${JSON.stringify(pattern)} has ${fields} fields; give 5: minute hour day-of-month month day-of-week`,
    );
  let cron: Cron;
  try {
    cron = new Cron(pattern, { timezone: tz, mode: '5-part' });
  } catch (error) {
    throw new ConfigError(`cron ${JSON.stringify(pattern)}: ${messageOf(error).replace(/^CronPattern: /, '')}`, {
      cause: error,
    });
  }
  if (value.duration === undefined || value.duration === null)
    throw new ConfigError(`cron ${JSON.stringify(pattern)} needs duration: how long each window lasts (e.g. 8h)`);
  const durationMs = parseDuration(value.duration);
  return { text: `${pattern} for ${String(value.duration).trim()}`, schedule: { type: 'cron', cron, durationMs } };
}

/** `30m`, `8h`, `1h30m`, `2d` → ms. */
function parseDuration(raw: unknown): number {
  const text = String(raw).trim();
  if (/^0+$/.test(text)) throw new ConfigError(`duration ${JSON.stringify(text)} must be longer than 0 (e.g. 8h)`);
  const m = /^(?:(\d{1,4})d)?(?:(\d{1,5})h)?(?:(\d{1,6})m)?$/i.exec(text);
  if (!m || text === '')
    throw new ConfigError(`duration ${JSON.stringify(text)} is not a duration; write it as 30m, 8h, 1h30m or 2d`);
  const ms = Number(m[1] ?? 0) * DAY + Number(m[2] ?? 0) * HOUR + Number(m[3] ?? 0) * MIN;
  if (ms === 0) throw new ConfigError(`duration ${JSON.stringify(text)} must be longer than 0 (e.g. 8h)`);
  return ms;
}

/**
 * Open or closed at `now`, and when that changes within 14 days: from the windows' edges, walked
 * in order, each window's intervals made only as far as the walk needs them.
 */
export function windowVerdict(windows: DeployWindow[], now: Date): WindowVerdict {
  const at = now.getTime();
  const tracks = windows.map((w) => new Track(w, at));
  const allows = tracks.some((t) => t.window.kind === 'allow');
  const isOpen = (x: number) =>
    !tracks.some((t) => t.window.kind === 'deny' && t.activeAt(x)) &&
    (!allows || tracks.some((t) => t.window.kind === 'allow' && t.activeAt(x)));
  const openNow = isOpen(at);
  const deny = tracks.find((t) => t.window.kind === 'deny' && t.activeAt(at))?.window;
  let change: Date | undefined;
  for (let x = at; ;) {
    const next = Math.min(...tracks.map((t) => t.edgeAfter(x)));
    if (!(next <= at + HORIZON)) break;
    x = next;
    if (isOpen(x) !== openNow) {
      change = new Date(x);
      break;
    }
  }
  if (openNow) return change ? { open: true, closesAt: change } : { open: true };
  const reason = deny ? `deny window ${JSON.stringify(deny.text)} (${deny.tz})` : 'outside every allow window';
  return change ? { open: false, reason, opensAt: change } : { open: false, reason };
}

/** One window's intervals from `from` on, taken from its generator as the walk reaches them. */
class Track {
  readonly window: DeployWindow;
  private readonly source: Iterator<Interval>;
  private readonly known: Interval[] = [];
  private ended = false;

  constructor(window: DeployWindow, from: number) {
    this.window = window;
    this.source = intervalsOf(window, from);
  }

  activeAt(x: number): boolean {
    this.readPast(x);
    return this.known.some((i) => i.start <= x && x < i.end);
  }

  /** The first start or end after `x` (Infinity if none). */
  edgeAfter(x: number): number {
    this.readPast(x);
    let next = Infinity;
    for (const i of this.known) {
      if (i.start > x) next = Math.min(next, i.start);
      else if (i.end > x) next = Math.min(next, i.end);
    }
    return next;
  }

  /** Every interval that starts at or before `x` is known (and one more); those over by `x` are let go. */
  private readPast(x: number): void {
    while (!this.ended && (this.known.length === 0 || this.known.at(-1)!.start <= x)) {
      const next = this.source.next();
      if (next.done) this.ended = true;
      else this.known.push(next.value);
    }
    while (this.known.length > 1 && this.known[0].end <= x) this.known.shift();
  }
}

/** A window's intervals that end after `from`, in the order they start. */
function* intervalsOf({ schedule, tz }: DeployWindow, from: number): Generator<Interval> {
  if (schedule.type === 'dated') {
    if (schedule.end > from) yield schedule;
    return;
  }
  if (schedule.type === 'cron') return yield* cronIntervals(schedule.cron, schedule.durationMs, from);
  // An interval that started up to spanDays + 1 local days ago may still be running.
  for (let day = localDayOf(from, tz) - schedule.spanDays - 1; ; day++) {
    if (!schedule.days.includes((((day + 3) % 7) + 7) % 7)) continue; // day 0, 1970-01-01, was a Thursday
    const start = localToUtc(day * DAY + schedule.start * MIN, tz);
    const end = localToUtc((day + schedule.spanDays) * DAY + schedule.end * MIN, tz);
    if (end > from && end > start) yield { start, end };
  }
}

/**
 * A cron's intervals [fire, fire + duration), those that overlap or touch made one. The first fire
 * after `from` - duration is the first that can still be running at `from`.
 */
function* cronIntervals(cron: Cron, durationMs: number, from: number): Generator<Interval> {
  let fire = cron.nextRun(new Date(from - durationMs))?.getTime();
  while (fire !== undefined) {
    const start = fire;
    let end = start + durationMs;
    for (;;) {
      fire = fireAfter(cron, fire);
      if (fire === undefined || fire > end || end > from + HORIZON) break;
      end = Math.max(end, fire + durationMs);
    }
    yield { start, end };
  }
}

/** The fire after a fire, remembered: each verdict of a rollout asks for the same ones again. */
const nextFires = new WeakMap<Cron, Map<number, number | undefined>>();

function fireAfter(cron: Cron, fire: number): number | undefined {
  let known = nextFires.get(cron);
  if (!known) nextFires.set(cron, (known = new Map()));
  if (known.has(fire)) return known.get(fire);
  if (known.size >= 1000) known.clear();
  const next = cron.nextRun(new Date(fire))?.getTime();
  known.set(fire, next);
  return next;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's offset from UTC at instant `ms`, in ms: local = ms + offset. */
function offsetAt(ms: number, tz: string): number {
  let format = formatters.get(tz);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, format);
  }
  // "1/31/2026, 23:59:58": month, day, year, hour, minute, second (format is 4x faster than formatToParts).
  const [month, day, year, hour, minute, second] = (format.format(ms).match(/\d+/g) ?? []).map(Number);
  return Date.UTC(year, month - 1, day, hour % 24, minute, second) - Math.floor(ms / 1000) * 1000;
}

/** The local day (days since 1970-01-01 on the zone's calendar) of instant `ms`. */
function localDayOf(ms: number, tz: string): number {
  return Math.floor((ms + offsetAt(ms, tz)) / DAY);
}

/**
 * The instant of a wall-clock time (`local`: ms as if the zone were UTC). Twice on the clock: its
 * first occurrence. In a gap (spring forward): the first instant after the gap.
 */
function localToUtc(local: number, tz: string): number {
  const key = `${tz} ${local}`;
  let instant = instants.get(key);
  if (instant === undefined) {
    if (instants.size >= 5000) instants.clear();
    instants.set(key, (instant = findInstant(local, tz)));
  }
  return instant;
}

/** localToUtc's answers, remembered: the same window edges come up verdict after verdict. */
const instants = new Map<string, number>();

function findInstant(local: number, tz: string): number {
  const before = offsetAt(local - DAY, tz);
  const after = offsetAt(local + DAY, tz);
  const fits = [before, after].filter((o) => offsetAt(local - o, tz) === o).map((o) => local - o);
  if (fits.length) return Math.min(...fits);
  // In the gap: `lo` is still on the old offset, `hi` already on the new one; offsets change on a
  // whole second, so halve to the second.
  let [lo, hi] = [local - after, local - before];
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, tz) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}
