// E-mail notifications (lib/notify/email.ts): addresses that could inject a header or an option
// are refused; a hostile commit message, author or branch cannot add a header (CR/LF, Unicode line
// separators, RTL overrides); the message goes to a stand-in sendmail (no MTA runs on this machine
// or in CI, and a test must not send mail) as `-t -oi` with the message on stdin.
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emailMessage, headerText, sendEmail } from '../../../lib/notify/email.ts';
import { emailAddressProblem } from '../../../lib/config/notify.ts';
import type { NotifyJob } from '../../../lib/notify/message.ts';
import { tmpDir } from '../../_helpers/common.ts';

const STAND_IN = path.join(import.meta.dirname, '../../fixtures/sendmail-stand-in.sh');

const job = (fields: Partial<NotifyJob> = {}): NotifyJob => ({
  id: '20261122-100000-abcdef',
  seq: 1,
  repo: 'octo/site',
  kind: 'build',
  branch: 'main',
  sha: 'a'.repeat(40),
  ref: 'refs/heads/main',
  tag: null,
  state: 'failed',
  exit: 1,
  reason: 'exited with 1',
  started: '2026-11-22T10:00:00.000Z',
  finished: '2026-11-22T10:00:12.000Z',
  ...fields,
});

/** RFC 5322 headers of a message as sendmail -t reads them: unfolded, in order. */
function headersOf(message: string): Array<[string, string]> {
  const head = message.slice(0, message.indexOf('\n\n'));
  return head
    .replace(/\n[ \t]/g, ' ')
    .split('\n')
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
    });
}

/** An RFC 2047 header value, decoded (base64 UTF-8 words only, as shipkit writes them). */
function decodeWords(value: string): string {
  return value.replace(/=\?UTF-8\?B\?([^?]*)\?=\s*/g, (_m, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
}

test('addresses: plain ones pass; anything that could be a second header, address or option does not', () => {
  for (const ok of ['ops@example.com', 'first.last+ci@mail.example.co.uk', 'o_p-s@localhost'])
    assert.is(emailAddressProblem(ok), undefined, ok);
  const bad = [
    'ops@example.com\nBcc: victim@evil.example',
    'ops@example.com\r',
    'Ops <ops@example.com>',
    'a@example.com,b@example.com',
    '-oQ/tmp/x@example.com',
    'ops@',
    '@example.com',
    'ops',
    'o ps@example.com',
    'ops@exa mple.com',
    '"q"@example.com',
    `${'a'.repeat(65)}@example.com`,
  ];
  for (const address of bad) assert.ok(emailAddressProblem(address), JSON.stringify(address));
});

test('a hostile commit message, author and branch cannot add a header', () => {
  const hostile = job({
    message:
      'Deploy \u202Eevil\u202C\r\nBcc: victim@evil.example\nX-Injected: 1\u2028Cc: also@evil.example\n\nbody with\n.\na lone dot',
    author: 'Eve\nBcc: author@evil.example',
    branch: 'main\u0085Bcc: nel@evil.example',
  });
  const message = emailMessage({
    to: 'ops@example.com',
    from: 'shipkit@example.com',
    event: 'failure',
    job: hostile,
    publicUrl: 'https://ci.example.com',
    now: new Date('2026-11-22T10:00:13Z'),
  });
  const headers = headersOf(message);
  assert.equal(
    headers.map(([name]) => name),
    [
      'to',
      'from',
      'subject',
      'date',
      'mime-version',
      'content-type',
      'content-transfer-encoding',
      'auto-submitted',
      'x-shipkit-job',
    ],
  );
  const head = message.slice(0, message.indexOf('\n\n'));
  assert.ok(/^[\x20-\x7e\n]*$/.test(head), 'every header line is printable ASCII');
  assert.not.match(
    head,
    /^(bcc|cc|x-injected)\s*:/im,
    'no line of the head starts a header of its own (the text stays inside Subject:)',
  );
  const subject = decodeWords(headers.find(([n]) => n === 'subject')![1]);
  assert.ok(subject.startsWith('[shipkit] octo/site build of main'), subject);
  assert.match(
    subject,
    'failed: Deploy <U+202E>evil<U+202C>',
    'the commit title, its bidi controls shown, not obeyed (nor dropped)',
  );
  assert.not.match(message, /[\u202a-\u202e\u2066-\u2069]/, 'no raw bidi control in the subject or the body');
  assert.is(headers.find(([n]) => n === 'to')![1], 'ops@example.com');
  assert.is(headers.find(([n]) => n === 'date')![1], 'Sun, 22 Nov 2026 10:00:13 +0000');
  const body = message.slice(message.indexOf('\n\n') + 2);
  assert.match(body, 'log:     https://ci.example.com/jobs/20261122-100000-abcdef');
  assert.match(body, 'Bcc: victim@evil.example', 'the message is in the body, as text');
  assert.equal(headerText('plain'), 'plain');
  assert.is(decodeWords(headerText('a\r\nb')), 'a b');
  assert.is(headerText('=?UTF-8?B?x?='), '=?UTF-8?B?PT9VVEYtOD9CP3g/PQ==?=', 'text that looks encoded is encoded');
  const long = headerText('é'.repeat(100));
  assert.ok(
    long.split('\n ').every((word) => word.length <= 75),
    'encoded words stay within 75 characters',
  );
  assert.is(decodeWords(long), 'é'.repeat(100));
});

test('sendEmail runs `sendmail -t -oi` with the message on stdin; EX_TEMPFAIL is retried, other failures are not', async () => {
  const dir = tmpDir();
  const sendmail = path.join(dir, 'sendmail');
  copyFileSync(STAND_IN, sendmail);
  const message = emailMessage({ to: 'ops@example.com', event: 'failure', job: job({ message: 'x\n.\ny' }) });
  const ok = await sendEmail(sendmail, message, { timeoutMs: 5_000 });
  assert.ok(ok.ok, ok.detail);
  const argv = readdirSync(dir).filter((f) => f.startsWith('argv-'));
  assert.equal(readFileSync(path.join(dir, argv[0]), 'utf8'), '-t\n-oi\n');
  assert.is(readFileSync(path.join(dir, argv[0].replace('argv-', 'mail-')), 'utf8'), message);
  writeFileSync(path.join(dir, 'exit-code'), '75');
  const temp = await sendEmail(sendmail, message, { timeoutMs: 5_000 });
  assert.equal([temp.ok, temp.retry], [false, true]);
  assert.match(temp.detail, 'sendmail exited with 75');
  writeFileSync(path.join(dir, 'exit-code'), '67');
  const refused = await sendEmail(sendmail, message, { timeoutMs: 5_000 });
  assert.equal([refused.ok, refused.retry], [false, false]);
  const missing = await sendEmail(path.join(dir, 'no-such-sendmail'), message, { timeoutMs: 5_000 });
  assert.equal([missing.ok, missing.retry], [false, false]);
  assert.match(missing.detail, /cannot be run \(exit 127\); install an MTA/);
  // A sendmail that exits without reading a large message closes the pipe under our write: a failed send, not a crash.
  const deaf = path.join(dir, 'deaf-sendmail');
  writeFileSync(deaf, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const closed = await sendEmail(deaf, `To: ops@example.com\n\n${'x'.repeat(1024 * 1024)}\n`, { timeoutMs: 5_000 });
  assert.equal([closed.ok, closed.detail], [false, 'sendmail exited with 1']);
});

test.run();
