// A preview's build plan (lib/previews/build.ts): the repo's steps up to compile, previews.env as
// its only env:, its own folder, and a fork fetched from the fork without the deploy key or token.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { previewBuildPaths, previewBuildPlan, previewBuildUser, previewFolder } from '../../../lib/previews/build.ts';

const config = parseShipkitConfig(
  parseYamlText(
    [
      'data: /var/lib/shipkit',
      'repos:',
      '  octo/site:',
      '    url: git@example.com:octo/site.git',
      '    steps: [pull, install, compile, upload, publish]',
      '    ssh_key: /etc/shipkit/deploy-key',
      '    env: { PROD_TOKEN: env:PROD_TOKEN }',
      '    upload: [{ from: dist, to: /srv/site }]',
      '    previews:',
      '      domain: preview.example.com',
      '      start: node server.js',
      '      env: { API_URL: https://staging.example.com }',
      '  octo/plain:',
      '    url: https://example.com/octo/plain.git',
      '',
    ].join('\n'),
    '/etc/shipkit/shipkit.yml',
  ),
);
const site = config.repos.get('octo/site')!;

test('steps up to compile, previews.env as the only env:, no pipeline after the build', () => {
  const plan = previewBuildPlan(config, site, {
    pr: 42,
    url: 'https://example.com/octo/site.git',
    fromFork: false,
    user: '#1879048192',
  });
  assert.is(plan.repo.user, '#1879048192', 'the uid hook-server gave the preview');
  assert.equal(plan.steps, ['pull', 'install', 'compile']);
  assert.equal(
    plan.repo.env.map((e) => e.name),
    ['API_URL'],
  );
  assert.is(plan.repo.upload.length, 0);
  assert.is(plan.repo.publish, undefined);
  assert.equal(plan.env, { SHIPKIT_PREVIEW: '1', SHIPKIT_PR: '42' });
  assert.is(plan.url, 'git@example.com:octo/site.git', "the repo's own URL for a branch of the repo");
  assert.is(plan.repo.gitAuth.sshKey, '/etc/shipkit/deploy-key');
});

test("a fork's head is fetched from the fork, without the deploy key", () => {
  const plan = previewBuildPlan(config, site, {
    pr: 7,
    url: 'https://example.com/mallory/site.git',
    fromFork: true,
    user: '#1879048193',
  });
  assert.is(plan.url, 'https://example.com/mallory/site.git');
  assert.is(plan.repo.url, 'https://example.com/mallory/site.git');
  assert.is(plan.repo.gitAuth.sshKey, undefined);
  assert.is(plan.repo.gitToken, undefined);
});

test("the preview's folders are its own, named by its number", () => {
  const folder = previewFolder('/var/lib/shipkit', 'octo/site', 42);
  assert.ok(folder.startsWith('/var/lib/shipkit/previews/'), folder);
  assert.is(path.basename(folder), 'pr-42');
  assert.equal(previewBuildPaths(folder), {
    work: path.join(folder, 'src'),
    logs: path.join(folder, 'logs'),
    state: path.join(folder, 'state'),
  });
  assert.throws(() => previewFolder('/d', 'octo/site', 0));
});

test('no --preview-user: previews.user, else this user, never root', () => {
  const previews = site.previews!;
  assert.is(previewBuildUser(previews, undefined, 1000), undefined, "not root: this process's user");
  assert.is(previewBuildUser({ ...previews, user: 'web' }, undefined, 0), 'web');
  assert.throws(() => previewBuildUser(previews, undefined, 0), /never runs as root: give --preview-user/);
});

test('a repo without previews: is a configuration error', () => {
  assert.throws(
    () => previewBuildPlan(config, config.repos.get('octo/plain')!, { pr: 1, url: 'x', fromFork: false }),
    (e: unknown) => e instanceof ConfigError && /has no previews: block/.test((e as Error).message),
  );
});

test.run();
