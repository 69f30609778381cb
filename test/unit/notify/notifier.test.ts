// Notifications (lib/notify) against real HTTP receivers on loopback: Slack's body, the webhook's
// signature (checked with node:crypto from docs/design.md's canonical string, not with shipkit's signer),
// which events reach which target, and every hostile receiver: a redirect, a hang, a 10 MB
// answer, errors, a refused connection. The job side never waits; URLs never reach the log.
import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../../lib/core/log.ts';
import type { ResolvedTarget } from '../../../lib/config/notify.ts';
import { MAX_ANSWER_BYTES, postJson } from '../../../lib/notify/deliver.ts';
import { eventsOf, type NotifyJob } from '../../../lib/notify/message.ts';
import { createNotifier } from '../../../lib/notify/notifier.ts';
import { createDeliveryOutcomes } from '../../../lib/notify/outcomes.ts';
import { startReceiver, type Reply } from '../../fixtures/hooks/receiver.ts';
import { closedPort, waitFor } from '../../_helpers/common.ts';

const receivers: Array<() => Promise<void>> = [];
// Closed after each test, passed or not: a listener left open would keep the test process alive.
test.after.each(async () => {
  await Promise.all(receivers.splice(0).map((close) => close()));
});

async function receiver(reply?: Reply) {
  const started = await startReceiver(reply);
  receivers.push(started.close);
  return started;
}

let seq = 0;
function job(state: string, fields: Partial<NotifyJob> = {}): NotifyJob {
  return {
    id: `20261122-100000-${(++seq).toString(16).padStart(6, '0')}`,
    seq,
    repo: 'octo/site',
    kind: 'build',
    branch: 'main',
    sha: 'a'.repeat(40),
    ref: 'refs/heads/main',
    tag: null,
    state,
    exit: state === 'failed' ? 3 : 0,
    reason: null,
    started: '2026-11-22T10:00:00.000Z',
    finished: '2026-11-22T10:00:12.000Z',
    ...fields,
  };
}

function capture() {
  let text = '';
  const log = createLogger({
    json: true,
    env: {},
    stream: {
      write: (c: string) => {
        text += c;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
  });
  return { log, text: () => text };
}

const SECRET = 'notify-secret-123';
const target = (
  channel: 'slack' | 'webhook',
  url: string,
  on: ResolvedTarget['on'] = ['failure', 'recovery'],
  where = 'notify[0]',
): ResolvedTarget => ({ channel, url: new URL(url), on, where, secret: channel === 'webhook' ? SECRET : undefined });

test('events: failure, success, and recovery after a failure on the same repo and branch', () => {
  const failed = job('failed');
  const other = job('failed', { branch: 'dev' });
  const ok = job('succeeded');
  assert.equal(eventsOf(failed, []), ['failure']);
  assert.equal(eventsOf(ok, [failed, other, ok]), ['success', 'recovery']);
  assert.equal(eventsOf(job('succeeded'), [failed, ok]), ['success'], 'the previous one succeeded');
  assert.equal(eventsOf(job('succeeded', { branch: 'dev' }), [failed, other, ok]), ['success', 'recovery']);
  assert.equal(eventsOf(job('succeeded', { repo: 'octo/x' }), [failed]), ['success']);
  assert.equal(
    eventsOf(job('succeeded'), [failed, ok, job('superseded'), job('interrupted')]),
    ['success'],
    'superseded/interrupted pass over',
  );
  assert.equal(eventsOf(job('superseded'), [failed]), []);
});

test('Slack gets {text}; the webhook gets the job as JSON signed as docs/design.md says; each only for the events it asked for', async () => {
  const slack = await receiver();
  const hook = await receiver();
  const { log, text } = capture();
  const outcomes: string[] = [];
  const slackUrl = `${slack.base}/services/T000/B000/XXXXsecretpath`;
  const notifier = createNotifier({
    targets: new Map([
      [
        '',
        [
          target('slack', slackUrl),
          target('webhook', `${hook.base}/hooks/shipkit?x=1`, ['success', 'failure'], 'notify[1]'),
        ],
      ],
    ]),
    log,
    publicUrl: 'https://ci.example.com',
    onOutcome: (c, o) => outcomes.push(`${c} ${o}`),
  });
  const failed = job('failed', { reason: 'step install failed: <b>&' });
  notifier.jobEnded(failed, [failed]);
  await waitFor(() => slack.received.length === 1 && hook.received.length === 1, { what: 'both notifications' });
  const s = slack.received[0];
  assert.is(s.url, '/services/T000/B000/XXXXsecretpath');
  assert.is(s.headers['content-type'], 'application/json');
  const sb = JSON.parse(s.body);
  assert.equal(Object.keys(sb), ['text']);
  assert.match(sb.text, `octo/site build of main (aaaaaaa) failed in 12 s: step install failed: &lt;b&gt;&amp;`);
  assert.match(sb.text, `<https://ci.example.com/jobs/${failed.id}|job ${failed.id}>`);
  const h = hook.received[0];
  const hb = JSON.parse(h.body);
  assert.is(hb.event, 'failure');
  assert.is(hb.job.id, failed.id);
  assert.is(hb.job.duration_ms, 12_000);
  assert.is(hb.url, `https://ci.example.com/jobs/${failed.id}`);
  const ts = String(h.headers['x-shipkit-timestamp']);
  const nonce = String(h.headers['x-shipkit-nonce']);
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60);
  assert.match(nonce, /^[A-Za-z0-9_-]{16,}$/);
  const expected = createHmac('sha256', SECRET).update(`POST\n/hooks/shipkit?x=1\n${ts}\n${nonce}`).digest('hex');
  assert.is(h.headers['x-shipkit-signature'], `sha256=${expected}`);
  assert.is(slack.received[0].headers['x-shipkit-signature'], undefined, 'Slack is not signed');

  // A success after that failure: recovery for Slack (failure+recovery), success for the webhook.
  const ok = job('succeeded');
  notifier.jobEnded(ok, [failed, ok]);
  await waitFor(() => slack.received.length === 2 && hook.received.length === 2, { what: 'the recovery' });
  assert.match(JSON.parse(slack.received[1].body).text, 'is green again');
  assert.is(JSON.parse(hook.received[1].body).event, 'success');
  // Another success: nothing for Slack (not asked), success for the webhook.
  const again = job('succeeded');
  notifier.jobEnded(again, [failed, ok, again]);
  await waitFor(() => hook.received.length === 3, { what: 'the second success' });
  await notifier.stop();
  assert.is(slack.received.length, 2);
  assert.equal(outcomes.sort(), [
    'slack delivered',
    'slack delivered',
    'webhook delivered',
    'webhook delivered',
    'webhook delivered',
  ]);
  assert.not.match(text(), 'XXXXsecretpath', 'the Slack URL is not logged');
  assert.not.match(text(), SECRET);
  assert.match(text(), '"target":"notify[0]"');
  await Promise.all([slack.close(), hook.close()]);
});

test("a repo's own list replaces the top level's", async () => {
  const top = await receiver();
  const own = await receiver();
  const notifier = createNotifier({
    targets: new Map([
      ['', [target('slack', `${top.base}/top`)]],
      ['octo/own', [target('slack', `${own.base}/own`)]],
    ]),
    log: capture().log,
  });
  notifier.jobEnded(job('failed', { repo: 'octo/own' }), []);
  notifier.jobEnded(job('failed'), []);
  await notifier.stop();
  assert.equal(
    own.received.map((r) => r.url),
    ['/own'],
  );
  assert.equal(
    top.received.map((r) => r.url),
    ['/top'],
  );
  await Promise.all([top.close(), own.close()]);
});

test('hostile receivers: 500 then 200 is retried with backoff; a redirect is not followed nor retried; 4xx is not retried', async () => {
  const flaky = await receiver((_q, res, n) => {
    res.statusCode = n === 1 ? 503 : 200;
    res.end();
  });
  const landing = await receiver();
  const redirect = await receiver((_q, res) => {
    res.writeHead(307, { Location: `${landing.base}/stolen` });
    res.end();
  });
  const gone = await receiver((_q, res) => {
    res.statusCode = 404;
    res.end('no');
  });
  const { log, text } = capture();
  const outcomes: string[] = [];
  const notifier = createNotifier({
    targets: new Map([
      [
        '',
        [
          target('webhook', `${flaky.base}/a`),
          target('webhook', `${redirect.base}/b`, undefined, 'notify[1]'),
          target('slack', `${gone.base}/c`, undefined, 'notify[2]'),
        ],
      ],
    ]),
    log,
    backoffMs: 200,
    attempts: 3,
    onOutcome: (c, o) => outcomes.push(`${c} ${o}`),
  });
  notifier.jobEnded(job('failed'), []);
  await waitFor(() => outcomes.length === 3, { what: 'three outcomes' });
  assert.is(flaky.received.length, 2);
  assert.ok(flaky.received[1].at - flaky.received[0].at >= 180, 'waited before the retry');
  assert.is.not(
    flaky.received[0].headers['x-shipkit-nonce'],
    flaky.received[1].headers['x-shipkit-nonce'],
    'signed afresh',
  );
  assert.equal(
    flaky.received.map((r) => r.headers['x-shipkit-delivery']),
    [`${JSON.parse(flaky.received[0].body).job.id}-failure`, `${JSON.parse(flaky.received[0].body).job.id}-failure`],
    'one delivery id for both attempts',
  );
  assert.is(redirect.received.length, 1, 'a redirect is not retried');
  assert.is(landing.received.length, 0, 'nor followed');
  assert.is(gone.received.length, 1, 'a 404 is not retried');
  assert.equal(outcomes.sort(), ['slack failed', 'webhook delivered', 'webhook failed']);
  assert.match(text(), /redirected \(307\)/);
  assert.match(text(), /answered 404/);
  await notifier.stop();
  await Promise.all([flaky.close(), landing.close(), redirect.close(), gone.close()]);
});

test("each notification's outcome is kept for the job page: delivered, or failed with why, never the URL", async () => {
  const ok = await receiver();
  const down = await receiver((_q, res) => {
    res.statusCode = 503;
    res.end();
  });
  const deliveries = createDeliveryOutcomes();
  const notifier = createNotifier({
    targets: new Map([
      [
        '',
        [
          target('slack', `${ok.base}/services/SECRETPATH`),
          target('webhook', `${down.base}/hook`, undefined, 'notify[1]'),
        ],
      ],
    ]),
    log: capture().log,
    outcomes: deliveries,
    attempts: 2,
    backoffMs: 20,
  });
  const failed = job('failed');
  notifier.jobEnded(failed, [failed]);
  await waitFor(
    () => deliveries.of(failed.id).length === 2 && deliveries.of(failed.id).every((d) => d.outcome !== 'sending'),
    { what: 'both outcomes' },
  );
  await notifier.stop();
  assert.equal(
    deliveries.of(failed.id).map((d) => [d.what, d.outcome, d.attempts, d.detail]),
    [
      ['slack notification (notify[0]): failure', 'delivered', 1, undefined],
      ['webhook notification (notify[1]): failure', 'failed', 2, 'answered 503'],
    ],
  );
  assert.not.match(JSON.stringify(deliveries.of(failed.id)), 'SECRETPATH');
});

test('with several hook-servers: asked before each attempt; once this node no longer leads, nothing more is sent', async () => {
  const flaky = await receiver((_q, res, n) => {
    res.statusCode = n === 1 ? 503 : 200;
    res.end();
  });
  const { log, text } = capture();
  const outcomes = createDeliveryOutcomes();
  let leading = true;
  let asked = 0;
  const notifier = createNotifier({
    targets: new Map([['', [target('webhook', `${flaky.base}/a`)]]]),
    log,
    backoffMs: 200,
    attempts: 3,
    outcomes,
    stillLeads: async () => (asked++, leading),
  });
  const failed = job('failed');
  const settled = notifier.jobEnded(failed, []);
  await waitFor(() => flaky.received.length === 1, { what: 'the first attempt' });
  leading = false;
  await settled;
  assert.is(flaky.received.length, 1, 'the retry is not sent');
  assert.is(asked, 2, 'asked before each attempt');
  assert.match(text(), 'notification left to the node that leads now');
  assert.match(outcomes.of(failed.id)[0].detail ?? '', 'no longer leads');
  await notifier.stop();
});

test('a receiver that hangs is timed out, tried a bounded number of times, and the caller never waits', async () => {
  const hang = await receiver(() => {
    /* never answers */
  });
  const { log, text } = capture();
  const outcomes: string[] = [];
  const notifier = createNotifier({
    targets: new Map([['', [target('slack', `${hang.base}/x`)]]]),
    log,
    timeoutMs: 300,
    backoffMs: 50,
    attempts: 3,
    onOutcome: (c, o) => outcomes.push(o),
  });
  // It returns at once, before any attempt has ended; what it hands back (settled once the
  // notifications are sent or given up) is for the mirror's told mark, not for the job.
  const settled = notifier.jobEnded(job('failed'), []);
  assert.ok(settled instanceof Promise, 'jobEnded returns at once');
  assert.equal(outcomes, []);
  await waitFor(() => outcomes.length === 1, { what: 'the outcome', timeoutMs: 30_000 });
  assert.equal(outcomes, ['failed']);
  assert.is(hang.received.length, 3, 'three attempts, each timed out');
  assert.match(text(), /timed out after 0.3 s/);
  await notifier.stop();
  await hang.close();
});

test('a 10 MB answer: at most 64 KB is read, and the receiver is hung up on', async () => {
  let written = 0;
  let finished = false;
  const flood = await receiver(async (_q, res) => {
    res.writeHead(200, { 'Content-Length': String(10 * 1024 * 1024) });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    while (written < 10 * 1024 * 1024 && !res.destroyed) {
      written += chunk.length;
      if (!res.write(chunk))
        await new Promise((r) => {
          res.once('drain', r);
          res.once('close', r);
        });
    }
    finished = !res.destroyed;
    res.end();
  });
  const result = await postJson(new URL(`${flood.base}/x`), '{}', {}, { timeoutMs: 5_000 });
  assert.ok(result.ok);
  assert.ok(result.read <= MAX_ANSWER_BYTES, `${result.read} bytes read`);
  await waitFor(() => written > 0 && (finished || written < 10 * 1024 * 1024), { what: 'the sender to stop' });
  await new Promise((r) => setTimeout(r, 200));
  assert.not.ok(finished, `the receiver could not send its 10 MB (sent ${written} bytes before the hang-up)`);
  await flood.close();
});

test('a refused connection is retried and then failed; stop() cancels a pending backoff at once', async () => {
  const port = await closedPort();
  const outcomes: string[] = [];
  const { log, text } = capture();
  const notifier = createNotifier({
    targets: new Map([['', [target('webhook', `http://127.0.0.1:${port}/x`)]]]),
    log,
    backoffMs: 60_000,
    attempts: 4,
    onOutcome: (_c, o) => outcomes.push(o),
  });
  notifier.jobEnded(job('failed'), []);
  await waitFor(() => text().includes('trying again'), { what: 'the first failed attempt' });
  assert.match(text(), /could not connect \(ECONNREFUSED\)/);
  const before = Date.now();
  await notifier.stop(100);
  assert.ok(Date.now() - before < 2_000, 'stop does not wait for the backoff');
  assert.equal(outcomes, ['failed']);
  notifier.jobEnded(job('failed'), []);
  assert.equal(outcomes, ['failed'], 'nothing new after stop');
});

test.run();
