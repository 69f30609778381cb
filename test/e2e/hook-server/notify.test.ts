// @deno
// Notifications from a real hook-server child after real signed deliveries: a failing build
// reaches Slack (URL from env:, never in the output) and a signed webhook, its recovery too; a
// receiver that hangs does not delay the next job; counted in /metrics; bad notify: config exits 2.
import { createHmac, randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startReceiver } from '../../fixtures/hooks/receiver.ts';
import {
  FAKE_BUILD,
  deliverGithub,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const NOTIFY_SECRET = `notify-${randomUUID()}`;
const SLACK_PATH = `/services/T0/B0/${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  NOTIFY_SECRET,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

/** A receiver answering 200, or (`hang`) never answering. */
const receiver = (hang = false) => startReceiver(hang ? () => {} : undefined);

test('a failure and its recovery reach Slack and the signed webhook; a hanging receiver delays no job', async () => {
  const slack = await receiver();
  const hook = await receiver();
  const hang = await receiver(true);
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/fail': {}, 'octo/site': {} } });
  appendFileSync(
    config,
    [
      'public_url: https://ci.example.com/',
      'notify:',
      '  - slack: env:SLACK_URL',
      '  - webhook: ' + `${hook.base}/hooks/shipkit`,
      '    secret: env:NOTIFY_SECRET',
      '    on: [success, failure, recovery]',
      '  - slack: ' + `${hang.base}/hang`,
      '    on: [success, failure]',
      '',
    ].join('\n'),
  );
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { ...env, SLACK_URL: slack.base + SLACK_PATH },
  });
  try {
    const failed = await deliverGithub(server.url, 'push', pushPayload('octo/fail'), SECRET);
    const failedJob = await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);
    // The hanging receiver holds its notification for 10 s; the next job runs meanwhile.
    const next = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    const started = Date.now();
    await waitForJobState(server.url, TOKEN, next.json.job, ['succeeded']);
    assert.ok(Date.now() - started < 5_000, `the next job was not held up (${Date.now() - started} ms)`);
    await waitFor(() => slack.received.length >= 1 && hook.received.length >= 2, { what: 'the notifications' });
    assert.is(slack.received[0].url, SLACK_PATH);
    const text = JSON.parse(slack.received[0].body).text as string;
    assert.match(text, 'octo/fail build of main');
    assert.match(text, `<https://ci.example.com/jobs/${failedJob.id}|job ${failedJob.id}>`);
    assert.is(slack.received.length, 1, 'a plain success is not sent to a target on [failure, recovery]');
    const events = hook.received.map((r) => JSON.parse(r.body));
    assert.equal(events.map((e) => `${e.job.repo} ${e.event}`).sort(), ['octo/fail failure', 'octo/site success']);
    for (const r of hook.received) {
      const ts = String(r.headers['x-shipkit-timestamp']);
      const nonce = String(r.headers['x-shipkit-nonce']);
      const mac = createHmac('sha256', NOTIFY_SECRET).update(`POST\n/hooks/shipkit\n${ts}\n${nonce}`).digest('hex');
      assert.is(r.headers['x-shipkit-signature'], `sha256=${mac}`);
    }
    assert.ok(hang.received.length >= 1, 'the hanging receiver was asked');
    assert.not.match(server.output(), SLACK_PATH, 'the Slack URL is never logged');
    assert.not.match(server.output(), NOTIFY_SECRET);
    // A receiver records a request before it answers; the sender counts it once the answer is
    // back, so the counters are read until they catch up (or the wait times out).
    const slackDelivered = 'shipkit_notifications_total{channel="slack",outcome="delivered"} 1';
    const webhookDelivered = 'shipkit_notifications_total{channel="webhook",outcome="delivered"} 2';
    let metrics = '';
    await waitFor(
      async () => {
        const res = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
        metrics = await res.text();
        return metrics.includes(slackDelivered) && metrics.includes(webhookDelivered);
      },
      { timeoutMs: 5_000, what: 'the delivered counters' },
    ).catch(() => undefined);
    assert.match(metrics, slackDelivered);
    assert.match(metrics, webhookDelivered);
  } finally {
    const stopping = Date.now();
    assert.is(await server.stop(), 0);
    assert.ok(Date.now() - stopping < 8_000, 'a hanging receiver does not hold up the shutdown');
    await Promise.all([slack.close(), hook.close(), hang.close()]);
  }
});

test('bad notify: entries stop hook-server with exit 2, naming the key and never the URL', async () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['notify:', '  - slack: ftp://x.example.com/a'], {}, /notify\[0\]\.slack: must be an http/],
    [['notify:', '  - webhook: https://x.example.com/a'], {}, /notify\[0\]: a webhook: needs secret:/],
    [
      ['notify:', '  - slack: https://x.example.com/a', '    webhook: https://y.example.com/'],
      {},
      /give exactly one of slack: or webhook:/,
    ],
    [
      ['notify:', '  - slack: https://x.example.com/a', '    on: [sometimes]'],
      {},
      /notify\[0\]\.on\[0\]: unknown event "sometimes"/,
    ],
    [['notify:', '  - slack: env:SLACK_URL'], {}, /environment variable SLACK_URL is not set/],
    [
      ['notify:', '  - slack: env:SLACK_URL'],
      { SLACK_URL: 'not a url /services/SECRETPATH' },
      /notify\[0\]\.slack: the value of env:SLACK_URL is not an http/,
    ],
  ];
  for (const [lines, extra, message] of cases) {
    const dir = tmpDir();
    const config = writeConfig(dir, { repos: { 'octo/site': {} } });
    appendFileSync(config, `${lines.join('\n')}\n`);
    const res = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
      env: { ...env, ...extra },
    });
    assert.is(res.exitCode, 2, lines.join(' '));
    assert.match(res.stderr, message, lines.join(' '));
    assert.not.match(res.stderr, 'SECRETPATH');
  }
});

test.run();
