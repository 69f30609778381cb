// @deno
// E-mail notifications from a real hook-server child: a failing build whose push carries a hostile
// commit message reaches a stand-in sendmail (no MTA runs here or in CI, and a test must not send
// mail) as `-t -oi` with one To: and no header the commit message tried to add; a job that
// succeeds sends nothing to an entry on [failure]. Bad addresses and a missing sendmail exit 2.
import { randomUUID } from 'node:crypto';
import { appendFileSync, copyFileSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: FAKE_BUILD };
const STAND_IN = path.join(import.meta.dirname, '../../fixtures/sendmail-stand-in.sh');

test('a failure is mailed through sendmail -t -oi; a hostile commit message adds no header', async () => {
  const dir = tmpDir();
  const mailDir = tmpDir();
  const sendmail = path.join(mailDir, 'sendmail');
  copyFileSync(STAND_IN, sendmail);
  const config = writeConfig(dir, { repos: { 'octo/fail': {}, 'octo/site': {} } });
  appendFileSync(
    config,
    [
      'public_url: https://ci.example.com',
      'notify:',
      '  - email: ops@example.com',
      '    from: shipkit@ci.example.com',
      `    sendmail: ${sendmail}`,
      '',
    ].join('\n'),
  );
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const payload = pushPayload('octo/fail');
    payload.head_commit.message =
      'Fix it\r\nBcc: victim@evil.example\nCc: cc@evil.example\u2028To: to@evil.example\n\nsee above';
    payload.head_commit.author.name = 'Eve\nBcc: author@evil.example';
    const failed = await deliverGithub(server.url, 'push', payload, SECRET);
    await waitForJobState(server.url, TOKEN, failed.json.job, ['failed']);
    const ok = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
    await waitForJobState(server.url, TOKEN, ok.json.job, ['succeeded']);
    const mails = () => readdirSync(mailDir).filter((f) => /^mail-\d+\.txt$/.test(f));
    await waitFor(() => mails().length >= 1, { what: 'the mail' });
    await new Promise((r) => setTimeout(r, 300));
    assert.is(mails().length, 1, 'the success is not mailed to an entry on [failure, recovery]');
    const message = readFileSync(path.join(mailDir, mails()[0]), 'utf8');
    assert.equal(readFileSync(path.join(mailDir, mails()[0].replace('mail-', 'argv-')), 'utf8'), '-t\n-oi\n');
    const head = message.slice(0, message.indexOf('\n\n'));
    const names = head
      .replace(/\n[ \t]/g, ' ')
      .split('\n')
      .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
    assert.equal(
      names.filter((n) => n === 'to' || n === 'cc' || n === 'bcc'),
      ['to'],
      `only one recipient header:\n${head}`,
    );
    assert.match(head, /^To: ops@example\.com$/m);
    assert.match(head, /^From: shipkit@ci\.example\.com$/m);
    assert.not.match(head, /evil\.example/);
    assert.match(head, /^Subject: \[shipkit\] octo\/fail build of main failed: Fix it/m);
    assert.match(message, `https://ci.example.com/jobs/${failed.json.job}`);
    assert.match(server.output(), /notification delivered/);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('bad email: entries and a missing sendmail stop hook-server with exit 2 and FILE:LINE', async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['notify:', '  - email: "ops@example.com\\nBcc: victim@evil.example"'],
      /shipkit\.yml:\d+: notify\[0\]\.email: must not contain a line break/,
    ],
    [['notify:', '  - email: Ops <ops@example.com>'], /notify\[0\]\.email: must be a plain address/],
    [['notify:', '  - email: -oQ/tmp/x@example.com'], /notify\[0\]\.email: must not start with "-"/],
    [
      ['notify:', '  - email: ops@example.com', '    from: "a@b.example\\rX: y"'],
      /notify\[0\]\.from: must not contain a line break/,
    ],
    [
      ['notify:', '  - email: ops@example.com', '    sendmail: sendmail'],
      /notify\[0\]\.sendmail: must be the absolute path/,
    ],
    [
      ['notify:', '  - email: ops@example.com', '    sendmail: /nonexistent/sendmail'],
      /notify\[0\]\.sendmail: \/nonexistent\/sendmail is not an executable program; install an MTA/,
    ],
    [
      ['notify:', '  - slack: https://x.example.com/a', '    sendmail: /usr/sbin/sendmail'],
      /notify\[0\]\.sendmail: goes with email: only/,
    ],
  ];
  for (const [lines, message] of cases) {
    const dir = tmpDir();
    const config = writeConfig(dir, { repos: { 'octo/site': {} } });
    appendFileSync(config, `${lines.join('\n')}\n`);
    const res = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    assert.is(res.exitCode, 2, `${lines.join(' | ')}\n${res.stderr}`);
    assert.match(res.stderr, message, lines.join(' | '));
  }
});

test.run();
