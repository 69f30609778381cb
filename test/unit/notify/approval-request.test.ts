// Telling approvers (lib/notify/approval-request.ts) against real receivers on loopback and a
// stand-in sendmail that keeps what it is given: Slack's text, the webhook's JSON and signature,
// the e-mail; told once per app, version, environment and sha256 (a second run sends nothing),
// a receiver that keeps failing costs only its own message.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ResolvedTarget } from '../../../lib/config/notify.ts';
import { createRequestVerifier } from '../../../lib/http/signing.ts';
import {
  approvalEmail,
  approvalSlackBody,
  approvalWebhookBody,
  tellApprovers,
  type ApprovalRequest,
} from '../../../lib/notify/approval-request.ts';
import { startReceiver, type Reply } from '../../fixtures/hooks/receiver.ts';
import { tmpDir } from '../../_helpers/common.ts';

const STAND_IN = path.join(import.meta.dirname, '../../fixtures/sendmail-stand-in.sh');
const SECRET = 'approval-secret-123';

const receivers: Array<() => Promise<void>> = [];
test.after.each(async () => {
  await Promise.all(receivers.splice(0).map((close) => close()));
});

async function receiver(reply?: Reply) {
  const started = await startReceiver(reply);
  receivers.push(started.close);
  return started;
}

const sha = (bytes: string) => createHash('sha256').update(bytes).digest('hex');

const request = (fields: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  app: 'my-app',
  version: '1.4.0',
  env: 'production',
  sha256: sha('my-app 1.4.0 tarball'),
  required: 1,
  given: 0,
  waitingFor: ['Alice <alice@example.com>'],
  command: 'shipkit approve my-app 1.4.0 --env production --key KEY',
  publicUrl: 'https://ci.example.com/shipkit/',
  ...fields,
});

/** A folder with a stand-in sendmail; `mails()` are the messages it was given, oldest first. */
function standInSendmail() {
  const dir = tmpDir();
  const sendmail = path.join(dir, 'sendmail');
  copyFileSync(STAND_IN, sendmail);
  const mails = () =>
    readdirSync(dir)
      .filter((f) => /^mail-\d+\.txt$/.test(f))
      .map((f) => readFileSync(path.join(dir, f), 'utf8'));
  return { sendmail, mails, dir };
}

const slack = (base: string, where = 'notify[0]'): ResolvedTarget => ({
  channel: 'slack',
  url: new URL(`${base}/services/T0/B0/secretpath`),
  on: ['failure'],
  where,
});
const webhook = (base: string, where = 'notify[1]'): ResolvedTarget => ({
  channel: 'webhook',
  url: new URL(`${base}/hooks/shipkit?x=1`),
  secret: SECRET,
  on: ['success'],
  where,
});
const email = (sendmail: string, where = 'notify[2]'): ResolvedTarget => ({
  channel: 'email',
  email: { to: 'approvers@example.com', from: 'shipkit@example.com', sendmail },
  on: ['recovery'],
  where,
});

test("Slack, the signed webhook and e-mail are each told once, whatever the targets' on: says", async () => {
  const s = await receiver();
  const h = await receiver();
  const mail = standInSendmail();
  const stateDir = tmpDir();
  const targets = [slack(s.base), webhook(h.base), email(mail.sendmail)];
  const first = await tellApprovers(targets, request(), { stateDir });
  assert.equal(first, {
    told: true,
    already: false,
    outcomes: [
      { where: 'notify[0]', ok: true, detail: 'answered 200' },
      { where: 'notify[1]', ok: true, detail: 'answered 200' },
      { where: 'notify[2]', ok: true, detail: 'handed to sendmail' },
    ],
  });

  assert.is(s.received[0].url, '/services/T0/B0/secretpath');
  assert.equal(JSON.parse(s.received[0].body), {
    text:
      'my-app 1.4.0 waits for approval into production (0 of 1; waiting for Alice &lt;alice@example.com&gt;): ' +
      'shipkit approve my-app 1.4.0 --env production --key KEY <https://ci.example.com/shipkit/|status page>',
  });
  assert.is(s.received[0].headers['x-shipkit-signature'], undefined, 'Slack is not signed');

  const hook = h.received[0];
  assert.equal(JSON.parse(hook.body), {
    event: 'approval.requested',
    app: 'my-app',
    version: '1.4.0',
    env: 'production',
    sha256: request().sha256,
    required: 1,
    given: 0,
    waiting_for: ['Alice <alice@example.com>'],
    command: 'shipkit approve my-app 1.4.0 --env production --key KEY',
    url: 'https://ci.example.com/shipkit/',
  });
  const sha12 = request().sha256.slice(0, 12);
  assert.is(hook.headers['x-shipkit-delivery'], `approval-my-app-1.4.0-production-${sha12}`);
  assert.equal(createRequestVerifier(SECRET).verify('POST', hook.url, hook.headers), { ok: true, secret: 0 });
  assert.equal(createRequestVerifier('another-secret').verify('POST', hook.url, hook.headers), {
    ok: false,
    reason: 'wrong signature',
  });

  const [message] = mail.mails();
  assert.match(message, /^To: approvers@example.com\nFrom: shipkit@example.com\n/);
  assert.match(message, '\nSubject: [shipkit] my-app 1.4.0 waits for approval into production\n');
  assert.match(message, `\nX-Shipkit-Delivery: approval-my-app-1.4.0-production-${sha12}\n`);
  const body = message.slice(message.indexOf('\n\n') + 2);
  assert.match(
    body,
    'my-app 1.4.0 waits for approval into production (0 of 1; waiting for Alice <alice@example.com>).',
  );
  assert.match(body, '\n    shipkit approve my-app 1.4.0 --env production --key KEY\n');
  assert.match(body, `sha256:  ${request().sha256}\n`);
  assert.match(body, 'status:  https://ci.example.com/shipkit/\n');

  // The same request again (a promote run again while still waiting): nothing is sent.
  const again = await tellApprovers(targets, request({ given: 0 }), { stateDir });
  assert.equal(again, { told: false, already: true, outcomes: [] });
  assert.is(s.received.length, 1);
  assert.is(h.received.length, 1);
  assert.is(mail.mails().length, 1);
  assert.equal(readdirSync(path.join(stateDir, 'told')), [`my-app-1.4.0-production-${sha12}`]);
});

test('two runs at once: one tells, the other finds the marker', async () => {
  const s = await receiver();
  const stateDir = tmpDir();
  const results = await Promise.all([1, 2].map(() => tellApprovers([slack(s.base)], request(), { stateDir })));
  assert.equal(results.map((r) => r.already).sort(), [false, true]);
  assert.is(s.received.length, 1);
});

test('a receiver answering 500 is tried 3 times and reported failed; the others are still told', async () => {
  const broken = await receiver((_q, res) => {
    res.statusCode = 500;
    res.end('down');
  });
  const h = await receiver();
  const mail = standInSendmail();
  const result = await tellApprovers([slack(broken.base), webhook(h.base), email(mail.sendmail)], request(), {
    stateDir: tmpDir(),
    timeoutMs: 5_000,
  });
  assert.is(result.told, true);
  assert.equal(result.outcomes[0], { where: 'notify[0]', ok: false, detail: 'answered 500 after 3 attempts' });
  assert.equal(
    result.outcomes.slice(1).map((o) => o.ok),
    [true, true],
  );
  assert.is(broken.received.length, 3);
  assert.is(h.received.length, 1);
  assert.is(mail.mails().length, 1);
  assert.not.match(JSON.stringify(result), 'secretpath', 'no URL in an outcome');
});

test('other bytes under the same version (another sha256) are told again', async () => {
  const s = await receiver();
  const stateDir = tmpDir();
  assert.is((await tellApprovers([slack(s.base)], request(), { stateDir })).told, true);
  const rebuilt = request({ sha256: sha('my-app 1.4.0 tarball, built again') });
  assert.equal(await tellApprovers([slack(s.base)], rebuilt, { stateDir }), {
    told: true,
    already: false,
    outcomes: [{ where: 'notify[0]', ok: true, detail: 'answered 200' }],
  });
  assert.is(s.received.length, 2);
  assert.is(readdirSync(path.join(stateDir, 'told')).length, 2);
});

test('a request whose names could leave the marker folder is refused before anything is sent', async () => {
  const s = await receiver();
  const stateDir = tmpDir();
  for (const bad of [
    { app: '../evil' },
    { env: 'prod/../../x' },
    { version: '' },
    { sha256: 'ABC' },
    { required: -1 },
  ] as Array<Partial<ApprovalRequest>>) {
    await tellApprovers([slack(s.base)], request(bad), { stateDir }).then(
      () => assert.unreachable(JSON.stringify(bad)),
      (error: Error) => assert.is(error.name, 'ValidationError', JSON.stringify(bad)),
    );
  }
  assert.is(s.received.length, 0);
  assert.not.ok(existsSync(path.join(stateDir, 'told')));
  // No targets: nothing to tell and no marker, so targets added later are told.
  assert.equal(await tellApprovers([], request(), { stateDir }), { told: false, already: false, outcomes: [] });
  assert.not.ok(existsSync(path.join(stateDir, 'told')));
});

test('bodies: text Slack did not make is escaped, line breaks and bidi controls are not obeyed, no url without public_url', () => {
  const hostile = request({
    waitingFor: ['Mallory <m@example.com>\nBcc: victim@evil.example', 'Eve \u202Eevil & co'],
    publicUrl: undefined,
  });
  assert.equal(approvalSlackBody(hostile), {
    text:
      'my-app 1.4.0 waits for approval into production (0 of 1; waiting for Mallory &lt;m@example.com&gt; ' +
      'Bcc: victim@evil.example, Eve &lt;U+202E&gt;evil &amp; co): shipkit approve my-app 1.4.0 --env production --key KEY',
  });
  assert.not.ok('url' in approvalWebhookBody(hostile), 'no url without public_url');
  const message = approvalEmail(hostile, { to: 'ops@example.com', now: new Date('2026-11-22T10:00:13Z') });
  const head = message.slice(0, message.indexOf('\n\n'));
  assert.not.match(head, /^bcc\s*:/im);
  assert.not.match(message, /^bcc\s*:/im, 'the uid stays on its line of the body');
  assert.not.match(message, /[\u202a-\u202e]/);
  assert.match(head, '\nDate: Sun, 22 Nov 2026 10:00:13 +0000\n');
  assert.not.match(head, 'From:');
  assert.not.match(message, 'status:');
  assert.equal(
    approvalSlackBody(request({ waitingFor: [], given: 1, required: 2 })).text.split(':')[0],
    'my-app 1.4.0 waits for approval into production (1 of 2)',
  );
});

test.run();
