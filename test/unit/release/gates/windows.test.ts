// @deno
// Deploy windows (lib/release/gates/windows.ts): every form of `windows:` parsed or refused with its
// message, and windowVerdict's open/closed, reason and exact UTC instants of opening and closing,
// across week wraps, midnights, four DST nights (Berlin and New York) and cron windows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseWindow, windowVerdict, type DeployWindow } from '../../../../lib/release/gates/windows.ts';

const at = (iso: string) => new Date(iso);
const iso = (d: Date | undefined) => d?.toISOString();
const windows = (...raw: unknown[]): DeployWindow[] => raw.map(parseWindow);
const HOUR = 3_600_000;

/** The verdict in a form easy to compare: open or why not, and the instant it changes. */
function verdictAt(list: DeployWindow[], when: string) {
  const v = windowVerdict(list, at(when));
  return v.open
    ? { open: true, closesAt: iso(v.closesAt) }
    : { open: false, reason: v.reason, opensAt: iso(v.opensAt) };
}

test('parseWindow: each form, day names in any case or in full, tz UTC when not given', () => {
  const weekly = parseWindow({ deny: 'Fri 15:00 - Mon 08:00', tz: 'Europe/Berlin' });
  assert.equal(
    { kind: weekly.kind, text: weekly.text, tz: weekly.tz, schedule: weekly.schedule },
    {
      kind: 'deny',
      text: 'Fri 15:00 - Mon 08:00',
      tz: 'Europe/Berlin',
      schedule: { type: 'weekly', days: [4], start: 900, end: 480, spanDays: 3 },
    },
  );
  assert.equal(parseWindow({ deny: '  FRIDAY 15:00-monday  08:00 ', tz: 'Europe/Berlin' }).schedule, weekly.schedule);
  assert.equal(parseWindow({ allow: 'Mon-Thu 09:00 - 17:00' }).schedule, {
    type: 'weekly',
    days: [0, 1, 2, 3],
    start: 540,
    end: 1020,
    spanDays: 0,
  });
  assert.is(parseWindow({ allow: 'Mon-Thu 09:00 - 17:00' }).tz, 'UTC');
  assert.equal(parseWindow({ deny: 'Fri-Mon 22:00 - 6:00' }).schedule, {
    type: 'weekly',
    days: [4, 5, 6, 0],
    start: 1320,
    end: 360,
    spanDays: 1,
  });
  assert.equal(parseWindow({ allow: 'sat 10:00 - 14:00' }).schedule, {
    type: 'weekly',
    days: [5],
    start: 600,
    end: 840,
    spanDays: 0,
  });
  assert.equal(parseWindow({ deny: '00:00 - 01:00' }).schedule, {
    type: 'weekly',
    days: [0, 1, 2, 3, 4, 5, 6],
    start: 0,
    end: 60,
    spanDays: 0,
  });
  // Ends on its own day of the week, earlier: nearly a whole week.
  assert.is((parseWindow({ deny: 'Mon 08:00 - Mon 07:00' }).schedule as { spanDays: number }).spanDays, 7);
  const dated = parseWindow({ deny: '2026-12-24 00:00 - 2026-12-27 00:00', tz: 'Europe/Berlin' }).schedule;
  assert.equal(dated, {
    type: 'dated',
    start: Date.parse('2026-12-23T23:00:00Z'),
    end: Date.parse('2026-12-26T23:00:00Z'),
  });
  const cron = parseWindow({ deny: { cron: '0 22 * * *', duration: '8h' }, tz: 'America/New_York' });
  assert.is(cron.text, '0 22 * * * for 8h');
  assert.is(cron.schedule.type === 'cron' && cron.schedule.durationMs, 8 * HOUR);
  const durations: Array<[string, number]> = [
    ['30m', 0.5 * HOUR],
    ['1h30m', 1.5 * HOUR],
    ['2d', 48 * HOUR],
    ['1d12h', 36 * HOUR],
  ];
  for (const [duration, ms] of durations) {
    const w = parseWindow({ allow: { cron: '0 9 * * 1-5', duration } });
    assert.is(w.schedule.type === 'cron' && w.schedule.durationMs, ms, duration);
  }
});

test('parseWindow refuses each bad entry with a message that names the problem', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ deny: 'Fri 15:00 - Mon 08:00', tz: 'Europe/Berln' }, /^tz "Europe\/Berln" is not an IANA time zone/],
    [{ deny: 'Fri 15:00 - Mon 08:00', tz: '' }, /^tz "" is not an IANA time zone/],
    [{ deny: 'Fri 15:00 - Mon 08:00', tz: 1 }, /^tz 1 is not an IANA time zone/],
    [{ deny: 'Fro 15:00 - Mon 08:00' }, /^"Fro 15:00 - Mon 08:00": Fro is not a day \(Mon Tue/],
    [{ allow: 'Mon-Thurs 09:00 - 17:00' }, /Thurs is not a day/],
    [{ deny: 'Fri 24:00 - Mon 08:00' }, /^"Fri 24:00 - Mon 08:00": 24:00 is not a time/],
    [{ deny: 'Fri 25:00 - Mon 08:00' }, /^"Fri 25:00 - Mon 08:00": 25:00 is not a time/],
    [{ allow: '09:00 - 12:60' }, /^"09:00 - 12:60": 12:60 is not a time/],
    [{ allow: '9 - 17' }, /^"9 - 17": 9 is not a time/],
    [{ deny: 'Fri 15:00 Mon 08:00' }, /^"Fri 15:00 Mon 08:00": needs a dash between its start and its end/],
    [{ allow: '09:00 17:00' }, /needs a dash/],
    [{ deny: 'on weekends' }, /^"on weekends": is not a window; write it as "Fri 15:00 - Mon 08:00"/],
    [{ deny: 'Mon 08:00 - Mon 08:00' }, /starts and ends at the same time/],
    [{ allow: '09:00 - 09:00' }, /starts and ends at the same time/],
    [{ deny: '2026-02-30 00:00 - 2026-03-02 00:00' }, /2026-02-30 is not a date/],
    [{ deny: '2026-12-27 00:00 - 2026-12-24 00:00' }, /must end after it starts/],
    [{ allow: 'Mon 09:00 - 17:00', deny: 'Fri 15:00 - Mon 08:00' }, /has both allow and deny/],
    [{ tz: 'UTC' }, /needs allow: or deny:/],
    [{}, /needs allow: or deny:/],
    [{ deny: 'Fri 15:00 - Mon 08:00', zone: 'UTC' }, /^unknown key "zone" in a window; use allow:, deny: and tz:/],
    [{ deny: '' }, /^deny: is empty/],
    [{ allow: '   ' }, /^allow: is empty/],
    [{ deny: 5 }, /^deny: must be a window like/],
    [{ deny: ['Fri 15:00 - Mon 08:00'] }, /^deny: must be a window like/],
    [null, /must be a mapping/],
    ['deny Fri 15:00 - Mon 08:00', /must be a mapping/],
    [{ deny: { cron: 'a b c d e f', duration: '8h' } }, /^cron "a b c d e f" has 6 fields; give 5/],
    [{ deny: { cron: '0 22 * * * *', duration: '8h' } }, /has 6 fields; give 5/],
    [{ deny: { cron: '0 22 * *', duration: '8h' } }, /has 4 fields; give 5/],
    [{ deny: { cron: '61 22 * * *', duration: '8h' } }, /^cron "61 22 \* \* \*": .*minute/i],
    [{ deny: { cron: 'a b c d e', duration: '8h' } }, /^cron "a b c d e": /],
    [{ deny: { duration: '8h' } }, /needs cron:/],
    [{ deny: { cron: '0 22 * * *' } }, /^cron "0 22 \* \* \*" needs duration:/],
    [{ deny: { cron: '0 22 * * *', duration: 0 } }, /^duration "0" must be longer than 0/],
    [{ deny: { cron: '0 22 * * *', duration: '0m' } }, /^duration "0m" must be longer than 0/],
    [{ deny: { cron: '0 22 * * *', duration: 'eight hours' } }, /^duration "eight hours" is not a duration; write/],
    [{ deny: { cron: '0 22 * * *', duration: '8' } }, /^duration "8" is not a duration/],
    [{ deny: { cron: '0 22 * * *', duration: '1h30' } }, /is not a duration/],
    [{ deny: { cron: '0 22 * * *', duration: '' } }, /is not a duration/],
    [{ deny: { cron: '0 22 * * *', duration: '8h', every: 2 } }, /^unknown key "every" in a cron window/],
  ];
  for (const [raw, message] of bad) assert.throws(() => parseWindow(raw), message, JSON.stringify(raw));
});

test('a deny window that wraps the week: closed from Friday afternoon to Monday morning, Berlin time', () => {
  const list = windows({ deny: 'Fri 15:00 - Mon 08:00', tz: 'Europe/Berlin' });
  const reason = 'deny window "Fri 15:00 - Mon 08:00" (Europe/Berlin)';
  assert.equal(verdictAt(list, '2026-01-15T12:00:00Z'), { open: true, closesAt: '2026-01-16T14:00:00.000Z' });
  for (const when of ['2026-01-16T14:00:00Z', '2026-01-17T12:00:00Z', '2026-01-18T23:00:00Z', '2026-01-19T06:59:59Z'])
    assert.equal(verdictAt(list, when), { open: false, reason, opensAt: '2026-01-19T07:00:00.000Z' }, when);
  assert.equal(verdictAt(list, '2026-01-19T07:00:00Z'), { open: true, closesAt: '2026-01-23T14:00:00.000Z' });
});

test('one second before a deny window it is open, and closes that second later', () => {
  const list = windows({ deny: 'Fri 15:00 - Mon 08:00', tz: 'Europe/Berlin' });
  assert.equal(verdictAt(list, '2026-01-16T13:59:59Z'), { open: true, closesAt: '2026-01-16T14:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-01-16T13:59:59.999Z').closesAt, '2026-01-16T14:00:00.000Z');
});

test('allow windows: open only inside one, each day Mon..Thu; outside, when the next one starts', () => {
  const list = windows({ allow: 'Mon-Thu 09:00 - 17:00', tz: 'Europe/Berlin' });
  const outside = 'outside every allow window';
  assert.equal(verdictAt(list, '2026-01-20T10:00:00Z'), { open: true, closesAt: '2026-01-20T16:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-01-20T16:00:00Z'), {
    open: false,
    reason: outside,
    opensAt: '2026-01-21T08:00:00.000Z',
  });
  assert.equal(verdictAt(list, '2026-01-22T17:00:00Z'), {
    open: false,
    reason: outside,
    opensAt: '2026-01-26T08:00:00.000Z',
  });
  // Two allow windows that touch are one open stretch.
  const joined = windows({ allow: 'Mon 09:00 - 12:00' }, { allow: 'Mon 12:00 - 18:00' });
  assert.equal(verdictAt(joined, '2026-01-19T10:00:00Z'), { open: true, closesAt: '2026-01-19T18:00:00.000Z' });
  // An allow window that is over for good: closed, and never opens again.
  const past = windows({ allow: '2025-01-01 00:00 - 2025-01-02 00:00' });
  assert.equal(verdictAt(past, '2026-01-19T10:00:00Z'), { open: false, reason: outside, opensAt: undefined });
});

test('deny wins over allow, whichever is listed first; no windows at all is open', () => {
  const allow = { allow: '09:00 - 17:00' };
  const deny = { deny: 'Wed 12:00 - Wed 13:00' };
  for (const list of [windows(allow, deny), windows(deny, allow)]) {
    assert.equal(verdictAt(list, '2026-01-21T11:00:00Z'), { open: true, closesAt: '2026-01-21T12:00:00.000Z' });
    assert.equal(verdictAt(list, '2026-01-21T12:30:00Z'), {
      open: false,
      reason: 'deny window "Wed 12:00 - Wed 13:00" (UTC)',
      opensAt: '2026-01-21T13:00:00.000Z',
    });
    assert.equal(verdictAt(list, '2026-01-21T16:00:00Z'), { open: true, closesAt: '2026-01-21T17:00:00.000Z' });
    assert.equal(verdictAt(list, '2026-01-21T18:00:00Z').opensAt, '2026-01-22T09:00:00.000Z');
  }
  assert.equal(windowVerdict([], at('2026-01-21T12:30:00Z')), { open: true });
});

test('daily windows past midnight, on some days or every day', () => {
  const nights = windows({ deny: 'Mon-Fri 22:00 - 06:00' });
  const reason = 'deny window "Mon-Fri 22:00 - 06:00" (UTC)';
  // Friday night runs into Saturday morning; Saturday night is open until Monday night.
  assert.equal(verdictAt(nights, '2026-01-24T03:00:00Z'), { open: false, reason, opensAt: '2026-01-24T06:00:00.000Z' });
  assert.equal(verdictAt(nights, '2026-01-24T23:00:00Z'), { open: true, closesAt: '2026-01-26T22:00:00.000Z' });
  assert.equal(verdictAt(nights, '2026-01-26T23:00:00Z'), { open: false, reason, opensAt: '2026-01-27T06:00:00.000Z' });
  const everyDay = windows({ deny: '23:30 - 00:30', tz: 'Europe/Berlin' });
  assert.equal(verdictAt(everyDay, '2026-01-25T12:00:00Z'), { open: true, closesAt: '2026-01-25T22:30:00.000Z' });
  assert.equal(verdictAt(everyDay, '2026-01-25T23:00:00Z').opensAt, '2026-01-25T23:30:00.000Z');
});

test('a dated freeze: closes when it starts, opens when it ends; a change over 14 days away is not given', () => {
  const list = windows({ deny: '2026-12-24 00:00 - 2026-12-27 00:00', tz: 'UTC' });
  assert.equal(verdictAt(list, '2026-12-20T00:00:00Z'), { open: true, closesAt: '2026-12-24T00:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-12-25T08:00:00Z'), {
    open: false,
    reason: 'deny window "2026-12-24 00:00 - 2026-12-27 00:00" (UTC)',
    opensAt: '2026-12-27T00:00:00.000Z',
  });
  assert.equal(verdictAt(list, '2026-12-01T00:00:00Z'), { open: true, closesAt: undefined });
  assert.equal(verdictAt(list, '2026-12-27T00:00:00Z'), { open: true, closesAt: undefined });
});

// "Sat 22:00 - Sun 06:00" on the nights the clocks change: [when closed, when open again, hours].
const DST_NIGHTS: Array<[string, string, string, number]> = [
  ['Europe/Berlin', '2026-03-28T21:00:00Z', '2026-03-29T04:00:00Z', 7],
  ['Europe/Berlin', '2026-10-24T20:00:00Z', '2026-10-25T05:00:00Z', 9],
  ['America/New_York', '2026-03-08T03:00:00Z', '2026-03-08T10:00:00Z', 7],
  ['America/New_York', '2026-11-01T02:00:00Z', '2026-11-01T11:00:00Z', 9],
];

test('DST nights: "Sat 22:00 - Sun 06:00" is 7 real hours in spring and 9 in autumn, Berlin and New York', () => {
  for (const [tz, closes, opens, hours] of DST_NIGHTS) {
    const list = windows({ deny: 'Sat 22:00 - Sun 06:00', tz });
    const reason = `deny window "Sat 22:00 - Sun 06:00" (${tz})`;
    const before = new Date(Date.parse(closes) - 6 * HOUR).toISOString();
    assert.equal(verdictAt(list, before), { open: true, closesAt: new Date(closes).toISOString() }, tz);
    assert.equal(verdictAt(list, closes), { open: false, reason, opensAt: new Date(opens).toISOString() }, tz);
    const lastMs = new Date(Date.parse(opens) - 1).toISOString();
    assert.equal(verdictAt(list, lastMs), { open: false, reason, opensAt: new Date(opens).toISOString() }, tz);
    assert.is(verdictAt(list, opens).open, true, tz);
    assert.is((Date.parse(opens) - Date.parse(closes)) / HOUR, hours, tz);
  }
});

test('DST edges: a local time in the gap starts at the first instant after it; one that happens twice, at its first', () => {
  const cases: Array<[string, string, string, string, string]> = [
    // zone, window, a moment before it, closes (UTC), opens (UTC)
    ['Europe/Berlin', 'Sun 02:30 - Sun 05:00', '2026-03-28T12:00:00Z', '2026-03-29T01:00:00Z', '2026-03-29T03:00:00Z'],
    ['Europe/Berlin', 'Sun 02:30 - Sun 05:00', '2026-10-24T12:00:00Z', '2026-10-25T00:30:00Z', '2026-10-25T04:00:00Z'],
    [
      'America/New_York',
      'Sun 02:30 - Sun 05:00',
      '2026-03-07T12:00:00Z',
      '2026-03-08T07:00:00Z',
      '2026-03-08T09:00:00Z',
    ],
    [
      'America/New_York',
      'Sun 01:30 - Sun 04:00',
      '2026-10-31T12:00:00Z',
      '2026-11-01T05:30:00Z',
      '2026-11-01T09:00:00Z',
    ],
    // Both edges inside the gap: an empty window that night, and the next Sunday's as usual.
    ['Europe/Berlin', 'Sun 02:10 - Sun 02:50', '2026-03-28T12:00:00Z', '2026-04-05T00:10:00Z', '2026-04-05T00:50:00Z'],
  ];
  for (const [tz, when, before, closes, opens] of cases) {
    const list = windows({ deny: when, tz });
    assert.equal(verdictAt(list, before), { open: true, closesAt: new Date(closes).toISOString() }, `${tz} ${closes}`);
    assert.equal(verdictAt(list, closes).opensAt, new Date(opens).toISOString(), `${tz} ${opens}`);
  }
  // A dated edge in the gap too.
  const dated = windows({ deny: '2026-03-29 02:30 - 2026-03-29 04:00', tz: 'Europe/Berlin' });
  assert.equal(verdictAt(dated, '2026-03-29T00:00:00Z').closesAt, '2026-03-29T01:00:00.000Z');
});

test('cron windows: active from each fire time for the duration in real time, in the zone, across DST', () => {
  const list = windows({ deny: { cron: '0 22 * * *', duration: '8h' }, tz: 'America/New_York' });
  const reason = 'deny window "0 22 * * * for 8h" (America/New_York)';
  assert.equal(verdictAt(list, '2026-01-15T02:59:59Z'), { open: true, closesAt: '2026-01-15T03:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-01-15T03:00:00Z'), { open: false, reason, opensAt: '2026-01-15T11:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-01-15T04:00:00Z'), { open: false, reason, opensAt: '2026-01-15T11:00:00.000Z' });
  // Fired at 22:00 EST on Saturday 7 March; 8 real hours later it is 07:00 EDT. Next fire 22:00 EDT.
  assert.equal(verdictAt(list, '2026-03-08T10:00:00Z'), { open: false, reason, opensAt: '2026-03-08T11:00:00.000Z' });
  assert.equal(verdictAt(list, '2026-03-08T11:00:00Z'), { open: true, closesAt: '2026-03-09T02:00:00.000Z' });
  // A fire time in the gap: the first instant after it, as for the other windows.
  const gap = windows({ deny: { cron: '30 2 * * *', duration: '1h' }, tz: 'Europe/Berlin' });
  assert.equal(verdictAt(gap, '2026-03-28T12:00:00Z'), { open: true, closesAt: '2026-03-29T01:00:00.000Z' });
  // An allow cron: weekdays 09:00 for 8h.
  const weekdays = windows({ allow: { cron: '0 9 * * 1-5', duration: '8h' } });
  assert.equal(verdictAt(weekdays, '2026-01-24T12:00:00Z'), {
    open: false,
    reason: 'outside every allow window',
    opensAt: '2026-01-26T09:00:00.000Z',
  });
  assert.equal(verdictAt(weekdays, '2026-01-26T12:00:00Z'), { open: true, closesAt: '2026-01-26T17:00:00.000Z' });
});

test('cron windows that run into each other are one; a gap between them opens', () => {
  const always = windows({ deny: { cron: '0 * * * *', duration: '90m' } });
  assert.equal(verdictAt(always, '2026-01-15T12:34:00Z'), {
    open: false,
    reason: 'deny window "0 * * * * for 90m" (UTC)',
    opensAt: undefined,
  });
  const halves = windows({ deny: { cron: '0 */2 * * *', duration: '1h' } });
  assert.equal(verdictAt(halves, '2026-01-15T12:34:00Z').opensAt, '2026-01-15T13:00:00.000Z');
  assert.equal(verdictAt(halves, '2026-01-15T13:34:00Z').closesAt, '2026-01-15T14:00:00.000Z');
});

test('over a realistic list, every verdict agrees with itself: closed ones reopen later, open ones close later', () => {
  const list = windows(
    { deny: 'Fri 15:00 - Mon 08:00', tz: 'Europe/Berlin' },
    { allow: 'Mon-Thu 09:00 - 17:00', tz: 'Europe/Berlin' },
    { deny: '2026-12-24 00:00 - 2026-12-27 00:00', tz: 'UTC' },
    { deny: { cron: '0 22 * * *', duration: '8h' }, tz: 'America/New_York' },
  );
  const start = Date.parse('2026-01-01T00:00:00Z');
  for (let i = 0; i < 500; i++) {
    const now = new Date(start + i * 7 * 3_600_000 + i * 61_000);
    const verdict = windowVerdict(list, now);
    const next = verdict.open ? verdict.closesAt : verdict.opensAt;
    if (!next) continue;
    assert.ok(next.getTime() > now.getTime(), `${now.toISOString()}: the next edge is later`);
    const justBefore = windowVerdict(list, new Date(next.getTime() - 1000));
    assert.is(justBefore.open, verdict.open, `${now.toISOString()}: unchanged until ${next.toISOString()}`);
    assert.is(windowVerdict(list, next).open, !verdict.open, `${now.toISOString()}: changed at ${next.toISOString()}`);
  }
});

test('a dated window may give seconds: its edges fall on them', () => {
  const list = windows({ deny: '2026-11-28 10:00:05 - 2026-11-28 10:00:09', tz: 'Europe/Berlin' });
  assert.is(windowVerdict(list, new Date('2026-11-28T09:00:04Z')).open, true);
  assert.equal(verdictAt(list, '2026-11-28T09:00:04Z').closesAt, '2026-11-28T09:00:05.000Z');
  assert.equal(verdictAt(list, '2026-11-28T09:00:05Z').opensAt, '2026-11-28T09:00:09.000Z');
  assert.throws(() => windows({ deny: '2026-11-28 10:00:61 - 2026-11-28 10:01' }), /10:00:61 is not a time/);
});

test.run();
