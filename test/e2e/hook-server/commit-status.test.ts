// @deno
// Commit statuses from a real hook-server child after real signed deliveries: every request is
// checked against the forge's published description (GitHub's OpenAPI from @octokit/openapi,
// Gitea's and GitLab's documented shapes: test/fixtures/forge-status.ts). Real builds (git clone
// of a bare repo, a compile that passes or exits 3) give pending then success / failure on the
// pushed commit with the job page as target_url; Gitea and GitLab get their own paths, headers
// and state names. Config mistakes stop hook-server with exit 2 and FILE:LINE.
import { randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  pushPayload,
  releasePayload,
  waitForJobState,
} from '../../fixtures/hooks/deliveries.ts';
import {
  giteaStatusOperation,
  githubStatusOperation,
  gitlabStatusOperation,
  startStatusApi,
} from '../../fixtures/forge-status.ts';
import { git, makeBareRepo, runScript, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const STATUS_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, STATUS_TOKEN };

function writeShipkit(dir: string, lines: string[]): string {
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(
    file,
    [
      `data: ${path.join(dir, 'data')}`,
      'listen: 127.0.0.1:0',
      'secret: env:HOOK_SECRET',
      'token: env:HOOK_TOKEN',
      ...lines,
      '',
    ].join('\n'),
  );
  return file;
}

test("GitHub: real builds give pending then success, and pending then failure, each request as GitHub's OpenAPI describes it", async () => {
  const api = await startStatusApi(githubStatusOperation(STATUS_TOKEN));
  const base = tmpDir();
  const site = await makeBareRepo(path.join(base, 'git'), 'site');
  const broken = await makeBareRepo(path.join(base, 'git'), 'broken');
  const config = writeShipkit(base, [
    'public_url: https://ci.example.com/',
    'report: github',
    'report_token: env:STATUS_TOKEN',
    `report_api: ${api.api}`,
    'repos:',
    '  octo/site:',
    `    url: ${site.bare}`,
    '    steps: [pull, compile]',
    '    compile: echo built',
    '  octo/broken:',
    `    url: ${broken.bare}`,
    '    steps: [pull, compile]',
    '    compile: exit 3',
  ]);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const ok = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: site.first, cloneUrl: site.bare }),
      SECRET,
    );
    const bad = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/broken', { sha: broken.first, cloneUrl: broken.bare }),
      SECRET,
    );
    assert.is(ok.status, 202);
    assert.is(bad.status, 202);
    const okJob = await waitForJobState(server.url, TOKEN, ok.json.job, ['succeeded', 'failed'], 60_000);
    const badJob = await waitForJobState(server.url, TOKEN, bad.json.job, ['succeeded', 'failed'], 60_000);
    assert.is(okJob.state, 'succeeded');
    assert.is(badJob.state, 'failed');
    await waitFor(() => api.forSha(site.first).length >= 2 && api.forSha(broken.first).length >= 2, {
      what: 'four statuses',
    });
    for (const r of api.received) assert.equal(r.problems, [], `${r.method} ${r.path} ${JSON.stringify(r.body)}`);
    const states = (sha: string) => api.forSha(sha).map((r) => r.body.state);
    assert.equal(states(site.first), ['pending', 'success']);
    assert.equal(states(broken.first), ['pending', 'failure']);
    for (const [sha, job, repo] of [
      [site.first, okJob, 'site'],
      [broken.first, badJob, 'broken'],
    ] as const) {
      for (const r of api.forSha(sha)) {
        assert.equal(r.params, { owner: 'octo', repo, sha });
        assert.is(r.body.context, 'shipkit/build');
        assert.is(r.body.target_url, `https://ci.example.com/jobs/${job.id}`);
        assert.ok(r.body.description.length <= 140);
      }
    }
    assert.match(
      api.forSha(broken.first)[1].body.description,
      /^build failed \(exit 1\) in \d+ s$/,
      'build exits 1 when a step fails',
    );
    assert.not.match(server.output(), STATUS_TOKEN, 'the token is never logged');
    assert.match(server.output(), /commit status set/);
    // The counter moves once hook-server has read GitHub's answer, which may come after the
    // fake API has recorded the request: wait for it rather than read it once.
    const delivered = 'shipkit_commit_statuses_total{forge="github",outcome="delivered"} 4';
    const metrics = () =>
      fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then((r) => r.text());
    await waitFor(async () => (await metrics()).includes(delivered), { what: 'four statuses counted delivered' });
  } finally {
    assert.is(await server.stop(), 0);
    await api.close();
  }
});

test('Gitea and GitLab: their paths, auth headers and state names; the API address derived from url:', async () => {
  const gitea = await startStatusApi(giteaStatusOperation(STATUS_TOKEN), { prefix: '/gitea/api/v1' });
  const gitlab = await startStatusApi(gitlabStatusOperation(STATUS_TOKEN), { prefix: '/api/v4' });
  const dir = tmpDir();
  const config = writeShipkit(dir, [
    'report: gitea',
    'report_token: env:STATUS_TOKEN',
    'repos:',
    '  octo/site:',
    `    url: ${gitea.base}/gitea/octo/site.git`,
    '  group/sub/project:',
    `    url: ${gitlab.base}/group/sub/project.git`,
    '    report: gitlab',
    '    report_token: env:STATUS_TOKEN',
    '  octo/fail:',
    `    url: ${gitea.base}/gitea/octo/fail.git`,
  ]);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { ...env, SHIPKIT_BUILD_COMMAND: FAKE_BUILD },
  });
  try {
    const shas = { gitea: 'b'.repeat(40), gitlab: 'c'.repeat(40), fail: 'd'.repeat(40) };
    const jobs = {
      gitea: (
        await deliverGithub(
          server.url,
          'push',
          pushPayload('octo/site', { sha: shas.gitea, cloneUrl: `${gitea.base}/gitea/octo/site.git` }),
          SECRET,
        )
      ).json.job,
      gitlab: (
        await deliverGithub(
          server.url,
          'push',
          pushPayload('group/sub/project', { sha: shas.gitlab, cloneUrl: `${gitlab.base}/group/sub/project.git` }),
          SECRET,
        )
      ).json.job,
      fail: (
        await deliverGithub(
          server.url,
          'push',
          pushPayload('octo/fail', { sha: shas.fail, cloneUrl: `${gitea.base}/gitea/octo/fail.git` }),
          SECRET,
        )
      ).json.job,
    };
    for (const id of Object.values(jobs)) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'failed']);
    await waitFor(() => gitea.received.length >= 4 && gitlab.received.length >= 2, { what: 'the statuses' });
    for (const r of [...gitea.received, ...gitlab.received])
      assert.equal(r.problems, [], `${r.method} ${r.path} ${JSON.stringify(r.body)}`);
    assert.equal(
      gitea.forSha(shas.gitea).map((r) => r.body.state),
      ['pending', 'success'],
    );
    assert.equal(
      gitea.forSha(shas.fail).map((r) => r.body.state),
      ['pending', 'failure'],
    );
    assert.equal(gitea.forSha(shas.gitea)[0].params, { owner: 'octo', repo: 'site', sha: shas.gitea });
    // GitLab: the project path is one encoded segment; `running` while it runs, `name` is the context.
    const lab = gitlab.forSha(shas.gitlab);
    assert.equal(
      lab.map((r) => r.body.state),
      ['running', 'success'],
    );
    assert.is(lab[0].path, `/projects/group%2Fsub%2Fproject/statuses/${shas.gitlab}`);
    assert.is(lab[0].body.name, 'shipkit/build');
    assert.is(lab[0].body.target_url, undefined, 'no public_url: no link');
    assert.not.match(server.output(), STATUS_TOKEN);
    void jobs;
  } finally {
    assert.is(await server.stop(), 0);
    await Promise.all([gitea.close(), gitlab.close()]);
  }
});

test('a release: shipkit/release on the commit its tag names, looked up in the clone after the job (the event names the tag only)', async () => {
  const api = await startStatusApi(githubStatusOperation(STATUS_TOKEN));
  const base = tmpDir();
  const app = await makeBareRepo(path.join(base, 'git'), 'app', {
    'release.sh': '#!/bin/sh\necho "released $SHIPKIT_TAG"\n',
  });
  chmodSync(path.join(app.work, 'release.sh'), 0o755);
  const tagged = await app.commit({ 'VERSION.txt': '1.0.0\n' }, 'version 1.0.0');
  await git(app.work, 'tag', 'v1.0.0', tagged);
  await git(app.work, 'push', '--quiet', 'origin', 'refs/tags/v1.0.0');
  await app.commit({ 'VERSION.txt': '1.1.0-dev\n' }, 'after the tag');
  const config = writeShipkit(base, [
    'report: github',
    'report_token: env:STATUS_TOKEN',
    `report_api: ${api.api}`,
    'repos:',
    '  octo/app:',
    `    url: ${app.bare}`,
  ]);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
  try {
    const res = await deliverGithub(server.url, 'release', releasePayload('octo/app', { tag: 'v1.0.0' }), SECRET);
    assert.is(res.status, 202);
    const job = await waitForJobState(server.url, TOKEN, res.json.job, ['succeeded', 'failed'], 60_000);
    assert.is(job.state, 'succeeded');
    await waitFor(() => api.received.length >= 1, { what: 'the release status' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      api.received.map((r) => [r.params.sha, r.body.state, r.body.context]),
      [[tagged, 'success', 'shipkit/release']],
      'no pending: the fresh clone did not have the tag when the job started',
    );
    assert.equal(api.received[0].problems, []);
    assert.match(server.output(), /commit status pending skipped: the job does not know its commit/);
  } finally {
    assert.is(await server.stop(), 0);
    await api.close();
  }
});

test('bad report settings stop hook-server with exit 2, FILE:LINE and the key, never the token', async () => {
  const repo = ['repos:', '  octo/site:', '    url: https://github.com/octo/site.git'];
  const cases: Array<[string[], RegExp]> = [
    [['report: github', ...repo], /shipkit\.yml:5: report: github needs report_token:/],
    [
      ['report: bitbucket', 'report_token: env:STATUS_TOKEN', ...repo],
      /shipkit\.yml:5: report: must be one of github, gitea, gitlab, got "bitbucket"/,
    ],
    [
      ['report: github', 'report_token: env:STATUS_TOKEN', 'report_api: ftp://api.example.com', ...repo],
      /shipkit\.yml:7: report_api: must start with https:\/\//,
    ],
    [
      ['report: github', 'report_token: env:STATUS_TOKEN', 'report_api: http://ghe.example.com/api/v3', ...repo],
      /shipkit\.yml:7: report_api: must be https:\/\/ \(plain http would send the token in clear text/,
    ],
    [
      [
        'report: github',
        'report_token: env:STATUS_TOKEN',
        'report_api: https://user:pw@ghe.example.com/api/v3',
        ...repo,
      ],
      /shipkit\.yml:7: report_api: must not carry a user name or password/,
    ],
    [
      ['report: github', 'report_token: env:STATUS_TOKEN', 'report_api: not a url', ...repo],
      /shipkit\.yml:7: report_api: must be an absolute URL/,
    ],
    [['report_token: env:STATUS_TOKEN', ...repo], /shipkit\.yml:5: report_token: is set but report: is not/],
    [
      ['report: gitea', 'report_token: env:STATUS_TOKEN', 'repos:', '  octo/site: {}'],
      /shipkit\.yml:5: report: gitea: there is no default API address, and no url: to derive it from; set report_api/,
    ],
    [
      [
        'report: gitlab',
        'report_token: env:STATUS_TOKEN',
        'repos:',
        '  octo/site:',
        '    url: git@gitlab.example.com:octo/site.git',
      ],
      /shipkit\.yml:9: repos\.octo\/site\.url: report: gitlab: the API address cannot be derived/,
    ],
    [
      ['repos:', '  group/sub/project:', '    report: github', '    report_token: env:STATUS_TOKEN'],
      /shipkit\.yml:7: repos\.group\/sub\/project\.report: github needs an owner\/name repository/,
    ],
    [
      ['report: github', 'report_token: env:UNSET_STATUS_TOKEN', ...repo],
      /shipkit\.yml:6: report_token: environment variable UNSET_STATUS_TOKEN is not set/,
    ],
    [
      ['report: github', 'report_token: env:STATUS_TOKEN', 'repos:', '  octo/site:', '    report: gitlab'],
      /shipkit\.yml:9: repos\.octo\/site\.report: gitlab needs report_token:/,
    ],
  ];
  for (const [lines, message] of cases) {
    const dir = tmpDir();
    const config = writeShipkit(dir, lines);
    const res = await runScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env });
    assert.is(res.exitCode, 2, `${lines.join(' | ')}\n${res.stderr}`);
    assert.match(res.stderr, message, lines.join(' | '));
    assert.not.match(res.stderr, STATUS_TOKEN);
  }
});

test.run();
