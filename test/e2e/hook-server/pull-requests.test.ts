// @deno
// Pull request events against hook-server as a child process: signed ones from every forge are
// read and answered 200 ignored (no repo has previews: yet), forged or unsigned ones refused as a
// push is, malformed ones (Gogs's, a bad SHA or number) answered 400 with the field in the log.
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  deliverGithub,
  githubSignature,
  opensslHex,
  post,
  pushPayload,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { forgePayload, githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const dir = tmpDir();
const config = writeConfig(dir, {
  repos: {
    'octo/site': {},
    'octo/own': { secret: 'own-secret-value' },
    'example/example': {},
    'gitlabhq/gitlab-test': {},
  },
});
let server: Server;

test.before(async () => {
  server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: 'false' },
  });
});
test.after(async () => {
  assert.is(await server.stop('SIGTERM'), 0);
});

async function jobCount(): Promise<number> {
  const res = await fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const json = await res.json();
  return (Array.isArray(json) ? json : json.jobs).length;
}

const pr = (action: string, repo = 'octo/site') => githubPullRequest(action, { repo });

test('a signed GitHub pull_request is read and answered 200 ignored: the repo has no previews:', async () => {
  for (const action of ['opened', 'synchronize', 'reopened', 'closed', 'merged', 'labeled']) {
    const res = await deliverGithub(server.url, 'pull_request', pr(action), SECRET);
    assert.is(res.status, 200, action);
    assert.equal(res.json, { ok: true, ignored: `pull request #2 ${action}: octo/site has no previews:` });
  }
  const assigned = await deliverGithub(server.url, 'pull_request', pr('assigned'), SECRET);
  assert.equal([assigned.status, assigned.json.ignored], [200, 'pull request assigned (previews do not act on it)']);
  assert.is(await jobCount(), 0);
});

test('a forged or unsigned pull_request is refused exactly as a forged or unsigned push', async () => {
  const refusals = async (event: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const base = { 'Content-Type': 'application/json', 'X-GitHub-Event': event, 'X-GitHub-Delivery': randomUUID() };
    const answers = [
      await deliverGithub(server.url, event, payload, 'not-the-secret'),
      await post(`${server.url}/hooks/github`, body, base),
      await post(`${server.url}/hooks/github`, `${body} `, {
        ...base,
        'X-Hub-Signature-256': await githubSignature(SECRET, body),
      }),
      // Another repo's secret.
      await deliverGithub(server.url, event, payload, 'own-secret-value'),
    ];
    return answers.map((a) => [a.status, a.json.error]);
  };
  const asPush = await refusals('push', pushPayload('octo/site'));
  const asPull = await refusals('pull_request', pr('opened'));
  assert.equal(asPull, asPush);
  assert.equal(
    asPull.map(([status]) => status),
    [401, 401, 401, 401],
  );
  // Signed with the default secret for a repo that has its own: refused as a push is.
  const own = await deliverGithub(server.url, 'pull_request', pr('opened', 'octo/own'), SECRET);
  const ownPush = await deliverGithub(server.url, 'push', pushPayload('octo/own'), SECRET);
  assert.equal([own.status, own.json.error], [ownPush.status, ownPush.json.error]);
  const unknown = await deliverGithub(server.url, 'pull_request', pr('opened', 'octo/nope'), SECRET);
  assert.equal([unknown.status, unknown.json.error], [404, 'unknown repository']);
  assert.is(await jobCount(), 0);
});

test('Gitea (bare-hex signature) and GitLab (token) pull and merge requests are answered 200 ignored', async () => {
  const gitea = JSON.stringify(forgePayload('gitea-pull-request-event.json'));
  const fromGitea = await post(`${server.url}/hooks/gitea`, gitea, {
    'Content-Type': 'application/json',
    'X-Gitea-Event': 'pull_request',
    'X-Gitea-Delivery': randomUUID(),
    'X-Gitea-Signature': opensslHex(SECRET, gitea),
  });
  assert.equal(
    [fromGitea.status, fromGitea.json.ignored],
    [200, 'pull request #2 opened: example/example has no previews:'],
  );
  const gitlab = JSON.stringify(forgePayload('gitlab-merge-request-event.json'));
  const headers = { 'Content-Type': 'application/json', 'X-Gitlab-Event': 'Merge Request Hook' };
  const fromGitlab = await post(`${server.url}/`, gitlab, { ...headers, 'X-Gitlab-Token': SECRET });
  assert.equal(
    [fromGitlab.status, fromGitlab.json.ignored],
    [200, 'pull request #1 opened: gitlabhq/gitlab-test has no previews:'],
  );
  const wrongToken = await post(`${server.url}/hooks/gitlab`, gitlab, { ...headers, 'X-Gitlab-Token': 'nope' });
  assert.is(wrongToken.status, 401);
});

test('malformed pull requests: 400 with a short answer, the missing or bad field named in the log', async () => {
  const gogs = forgePayload('gogs-pull-request-event.json');
  gogs.repository.full_name = 'octo/site';
  const body = JSON.stringify(gogs);
  const fromGogs = await post(`${server.url}/hooks/gitea`, body, {
    'Content-Type': 'application/json',
    'X-Gogs-Event': 'pull_request',
    'X-Gogs-Signature': opensslHex(SECRET, body),
  });
  assert.equal([fromGogs.status, fromGogs.json.error], [400, 'malformed payload']);
  await waitFor(() => /no pull_request\.head and no pull_request\.base object/.test(server.output()), {
    what: "the log line naming Gogs's missing head",
  });
  const badSha = pr('synchronize');
  badSha.pull_request.head.sha = 'HEAD;reboot';
  const badNumber = { ...pr('opened'), number: '2' };
  for (const payload of [badSha, badNumber]) {
    const res = await deliverGithub(server.url, 'pull_request', payload, SECRET);
    assert.equal([res.status, res.json.error], [400, 'malformed payload']);
  }
  assert.match(server.output(), /pull_request\.head\.sha/);
  // A hostile branch name and title are data: read, answered, never refused.
  const hostile = pr('opened');
  hostile.pull_request.head.ref = '../../x;$(reboot)\n\x1b[2J';
  hostile.pull_request.title = 'é'.repeat(300);
  const res = await deliverGithub(server.url, 'pull_request', hostile, SECRET);
  assert.is(res.status, 200);
  assert.is(await jobCount(), 0);
});

test.run();
