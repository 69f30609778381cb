// The `notify:` lists (lib/config/notify.ts): slack, webhook and e-mail entries with their events,
// every refused shape named at its FILE:LINE, addresses that could inject a header refused, and
// the URLs and secrets resolved from env: and file: when hook-server starts.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { emailAddressProblem, parseNotifyList, resolveNotifyTargets } from '../../../lib/config/notify.ts';
import { tmpDir } from '../../_helpers/common.ts';

const FILE = '/etc/shipkit/shipkit.yml';
const listOf = (lines: string[]) => parseNotifyList(parseYamlText(['notify:', ...lines, ''].join('\n'), FILE), []);

test('absent: undefined; each channel with its defaults and events', () => {
  assert.is(parseNotifyList(parseYamlText('repos: {}\n', FILE), []), undefined);
  const list = listOf([
    '  - slack: env:SLACK_URL',
    '  - webhook: https://hooks.example.com/shipkit',
    '    secret: file:hook.secret',
    '    on: [success, failure]',
    '  - email: ops@example.com',
    '    from: shipkit@example.com',
  ])!;
  assert.equal(
    list.map((t) => [t.channel, t.on, t.where]),
    [
      ['slack', ['failure', 'recovery'], 'notify[0]'],
      ['webhook', ['success', 'failure'], 'notify[1]'],
      ['email', ['failure', 'recovery'], 'notify[2]'],
    ],
  );
  assert.equal(list[2].email, { to: 'ops@example.com', from: 'shipkit@example.com', sendmail: '/usr/sbin/sendmail' });
});

test('refused shapes, each at its line', () => {
  const cases: Array<[string[], RegExp]> = [
    [['  - slack: env:A', '    webhook: env:B'], /:2.*give exactly one of slack: or webhook:/],
    [['  - webhook: https://x.example'], /a webhook: needs secret:/],
    [['  - slack: env:A', '    secret: env:S'], /slack: takes no secret/],
    [['  - slack: ftp://x.example'], /must be an http:\/\/ or https:\/\/ URL/],
    [['  - slack: env:A', '    on: [deploy]'], /unknown event "deploy"/],
    [['  - slack: env:A', '    on: []'], /must list at least one of success, failure, recovery/],
    [['  - email: ops@example.com', '    sendmail: sendmail'], /absolute path of the sendmail program/],
    [['  - slack: env:A', '    from: a@example.com'], /goes with email: only/],
    [['  - just a string'], /each notification must be a mapping/],
  ];
  for (const [lines, message] of cases)
    assert.throws(
      () => listOf(lines),
      (e: unknown) => e instanceof ConfigError && e.message.includes(FILE) && message.test(e.message),
      lines.join(' | '),
    );
});

test('addresses: plain ones pass; header injection, options and display names do not', () => {
  assert.is(emailAddressProblem('ops+ci@mail.example.com'), undefined);
  assert.match(emailAddressProblem('ops@example.com\r\nBcc: x@evil.example')!, /line break/);
  assert.match(emailAddressProblem('-oQ/tmp/x@example.com')!, /must not start with "-"/);
  assert.match(emailAddressProblem('Ops <ops@example.com>')!, /plain address/);
  assert.match(emailAddressProblem('a@b@example.com')!, /plain address/);
  assert.match(emailAddressProblem('nobody')!, /plain address/);
  assert.match(emailAddressProblem(`${'a'.repeat(250)}@x.io`)!, /longer than 254/);
});

test('resolved at start: env: and file: read, a non-http value and a missing sendmail refused', async () => {
  const dir = tmpDir('shipkit-notify-');
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(path.join(dir, 'hook.secret'), 'signing-secret\n');
  const lists = new Map([
    ['', listOf(['  - slack: env:SLACK_URL', '  - webhook: env:HOOK_URL', '    secret: file:hook.secret'])!],
  ]);
  const env = { SLACK_URL: 'https://hooks.slack.example/T/B/X', HOOK_URL: 'http://127.0.0.1:9/hook' };
  const resolved = (await resolveNotifyTargets(lists, { file, env })).get('')!;
  assert.is(resolved[0].url!.href, env.SLACK_URL);
  assert.is(resolved[1].secret, 'signing-secret');
  const bad = resolveNotifyTargets(lists, { file, env: { ...env, SLACK_URL: 'javascript:alert(1)' } });
  await bad.then(
    () => assert.unreachable('refused'),
    (e: unknown) => assert.match(String(e), /notify\[0\]\.slack: the value of env:SLACK_URL is not an http/),
  );
  const mail = new Map([['octo/site', listOf(['  - email: ops@example.com', `    sendmail: ${dir}/no-sendmail`])!]]);
  await resolveNotifyTargets(mail, { file, env }).then(
    () => assert.unreachable('refused'),
    (e: unknown) => assert.match(String(e), /is not an executable program; install an MTA/),
  );
});

test.run();
