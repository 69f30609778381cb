// lib/notify/message.ts: the Slack text and the webhook JSON for a job whose branch, commit
// message and author are hostile (a branch may hold < > & | ! and bidi controls: git accepts them).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { slackBody, webhookBody, type NotifyJob } from '../../../lib/notify/message.ts';

const HOSTILE_BRANCH = '<!channel>&<https://evil.example/|log in>\u202e';
const job: NotifyJob = {
  id: '20261122-120000-abcdef',
  seq: 7,
  repo: 'octo/site',
  kind: 'build',
  branch: HOSTILE_BRANCH,
  sha: 'a'.repeat(40),
  ref: `refs/heads/${HOSTILE_BRANCH}`,
  tag: null,
  state: 'failed',
  exit: 1,
  reason: 'exited with 1',
  started: '2026-11-22T12:00:00.000Z',
  finished: '2026-11-22T12:00:05.000Z',
  message: '<!here> <https://evil.example/|urgent> secret',
  author: '<@U123>',
};

test('slackBody: Slack control characters in a branch are escaped (no @channel ping, no link); the message and author are left out', () => {
  const { text } = slackBody('failure', job, 'https://ci.example.com');
  assert.not.match(text, '<!channel>');
  assert.not.match(text, '<https://evil.example');
  assert.match(
    text,
    '&lt;!channel&gt;&amp;&lt;https://evil.example/|log in&gt;&lt;U+202E&gt;',
    'the RTL override shown, not obeyed',
  );
  assert.not.match(text, '\u202e');
  assert.not.match(text, '<!here>', 'the commit message is not sent');
  assert.not.match(text, '<@U123>', 'nor the author');
  // The only link is the job page's.
  assert.equal(text.match(/<[^&]*?>/g), [
    '<https://ci.example.com/jobs/20261122-120000-abcdef|job 20261122-120000-abcdef>',
  ]);
});

test('webhookBody: the hostile branch as data in JSON; no commit message or author', () => {
  const body = JSON.parse(JSON.stringify(webhookBody('failure', job, 'https://ci.example.com')));
  assert.is(body.job.branch, HOSTILE_BRANCH);
  assert.is(body.url, 'https://ci.example.com/jobs/20261122-120000-abcdef');
  assert.not.ok('message' in body.job);
  assert.not.ok('author' in body.job);
});

test('a build that found its tree built already: "is up to date" in Slack, up_to_date in the webhook JSON', () => {
  const upToDate: NotifyJob = {
    ...job,
    branch: 'main',
    state: 'succeeded',
    exit: 0,
    reason: 'up-to-date: tree 0123456789ab (commit aaaaaaaaaaaa) was built by job j0; nothing to build',
  };
  assert.match(slackBody('success', upToDate).text, /build of main \(aaaaaaa\) is up to date \(nothing to build\)$/);
  assert.is(webhookBody('success', upToDate).job.up_to_date, true);
  assert.is(webhookBody('success', { ...upToDate, reason: null }).job.up_to_date, false);
  assert.match(slackBody('success', { ...upToDate, reason: null }).text, /succeeded in 5 s$/);
});

test.run();
