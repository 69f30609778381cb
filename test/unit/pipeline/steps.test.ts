// lib/pipeline/steps.ts (including --steps parsing) and the pure parts of lib/pipeline/job.ts: the stage libraries'
// call contract, stages that are not there, compile selection, argument validation.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSteps } from '../../../lib/pipeline/steps.ts';
import { compileStep, downloadsStep, uploadStep } from '../../../lib/pipeline/steps.ts';
import { StepFailure, type BuildContext } from '../../../lib/pipeline/context.ts';
import { redactUrls } from '../../../lib/core/redact.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { UsageError } from '../../../lib/core/errors.ts';
import { JobLogWriter } from '../../../lib/jobs/job-log.ts';
import { jobEnvironment, logSettings, validateRef, validateSha } from '../../../lib/pipeline/job.ts';
import { loadShipkitConfig, parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { FIXTURES } from '../../_helpers/build.ts';
import { tmpDir } from '../../_helpers/common.ts';

const STAGES = path.join(FIXTURES, 'stages');
const isUsage = (error: Error) => error instanceof UsageError;

async function context(yaml: string, stages: BuildContext['stages'] = {}): Promise<BuildContext> {
  const base = tmpDir();
  const config = parseShipkitConfig(parseYamlText(`data: ${base}/data\n${yaml}`, path.join(base, 'shipkit.yml')));
  const repo = config.repos.get('octo/site')!;
  const work = path.join(base, 'work');
  mkdirSync(work, { recursive: true });
  const log = await JobLogWriter.start(path.join(base, 'logs'), { id: 'unit', repo: 'octo/site', kind: 'build' });
  return {
    config,
    repo,
    paths: { work, logs: path.join(base, 'logs'), state: path.join(base, 'state') },
    log,
    env: process.env,
    deadline: Date.now() + 30_000,
    timeoutSec: 30,
    limits: { headBytes: 65536, tailBytes: 4096 },
    checkedOut: 'a'.repeat(40),
    stages,
  };
}

function logOf(ctx: BuildContext): string {
  ctx.log.flush();
  return readFileSync(ctx.log.file, 'utf8');
}

const UPLOAD_YAML =
  'repos:\n  octo/site:\n    upload:\n      - rsync: deploy@web1:/var/www/site/\n        from: out\n      - s3: { bucket: site }\n        from: out\n';

test('upload: calls runUploadStage({workDir, entries, doc, sourceSha, log})', async () => {
  const ctx = await context(UPLOAD_YAML, { upload: new URL(`file://${STAGES}/fake-upload.ts`) });
  const result = await uploadStep(ctx);
  assert.equal(result, { note: '2 target(s)' });
  const call = (globalThis as Record<string, any>).uploadCall;
  assert.is(call.workDir, ctx.paths.work);
  assert.equal(
    call.entries.map((e: { keyPath: unknown[] }) => e.keyPath),
    [
      ['repos', 'octo/site', 'upload', 0],
      ['repos', 'octo/site', 'upload', 1],
    ],
  );
  assert.is(call.doc, ctx.config.doc);
  assert.is(call.sourceSha, 'a'.repeat(40));
  assert.match(logOf(ctx), /\| upload: pretending to upload/);
  process.env.FAKE_UPLOAD_THROW = '1';
  try {
    await uploadStep(ctx);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, StepFailure);
    assert.match((error as Error).message, /The upload stage failed: rsync: connection refused/);
  } finally {
    delete process.env.FAKE_UPLOAD_THROW;
  }
});

test('upload and downloads stages that are not there: the step says so and what it skipped', async () => {
  const ctx = await context(UPLOAD_YAML, {
    upload: new URL('file:///nonexistent/upload/index.ts'),
    downloads: new URL('file:///nonexistent/downloads.ts'),
  });
  assert.equal(await uploadStep(ctx), { skipped: 'upload stage not available' });
  writeFileSync(
    path.join(ctx.paths.work, 'manifest.txt'),
    '# images\nhttps://example.com/a.png img/a.png\nhttps://example.com/b.png img/b.png\n',
  );
  assert.equal(await downloadsStep(ctx), { skipped: 'downloads stage not available' });
  const log = logOf(ctx);
  assert.match(
    log,
    /the upload stage is not available in this shipkit \(lib\/stages\/upload\/index.ts is missing\); nothing was uploaded: skipped 2 target\(s\): rsync, s3/,
  );
  assert.match(
    log,
    /the downloads stage is not available in this shipkit \(lib\/stages\/downloads.ts is missing\); nothing was fetched: manifest.txt with 2 line\(s\) skipped/,
  );
});

test('downloads: calls runDownloadsStage({workDir, log}); failed downloads fail the step', async () => {
  const ctx = await context('repos:\n  octo/site: {}\n', { downloads: new URL(`file://${STAGES}/fake-downloads.ts`) });
  assert.equal(await downloadsStep(ctx), { skipped: 'no manifest.txt or cloudinary.txt' });
  writeFileSync(path.join(ctx.paths.work, 'manifest.txt'), 'https://example.com/a.png a.png\n');
  assert.equal(await downloadsStep(ctx), { note: '1 fetched, 2 unchanged' });
  assert.is((globalThis as Record<string, any>).downloadsCall.workDir, ctx.paths.work);
  process.env.FAKE_DOWNLOADS_FAILED = '2';
  try {
    await downloadsStep(ctx);
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /2 download\(s\) failed/);
  } finally {
    delete process.env.FAKE_DOWNLOADS_FAILED;
  }
});

test('compile: nothing to compile is skipped with the reason', async () => {
  const ctx = await context('repos:\n  octo/site: {}\n');
  writeFileSync(path.join(ctx.paths.work, 'package.json'), '{"scripts":{"test":"true"}}');
  const result = await compileStep(ctx);
  assert.match(
    String((result as { skipped: string }).skipped),
    /no compile: in shipkit.yml, no lprc.js, no "build" script/,
  );
});

test('compile before any pull: says to run pull first', async () => {
  const ctx = await context('repos:\n  octo/site:\n    compile: make\n');
  ctx.paths.work = path.join(ctx.paths.work, 'not-cloned-yet');
  try {
    await compileStep(ctx);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, StepFailure);
    assert.match((error as Error).message, /does not exist yet; run the pull step first/);
  }
});

test('parseSteps keeps pipeline order and refuses unknown steps', () => {
  assert.equal(parseSteps('upload,pull', ['pull', 'install']), ['pull', 'upload']);
  assert.equal(parseSteps(undefined, ['pull', 'install']), ['pull', 'install']);
  assert.throws(
    () => parseSteps('pull,rm', ['pull']),
    (e: Error) => e instanceof UsageError && /Unknown step "rm"/.test(e.message),
  );
  assert.throws(() => parseSteps(',', ['pull']), isUsage);
});

test('validateRef and validateSha', () => {
  // Refs hook-server answers 202 for build too (one ref rule): monorepo tags, #, @, non-ASCII
  // (`é`, `a;b` and `a$(b)` left the refused list: git accepts them, and argv is never a shell).
  for (const ok of [
    'main',
    'refs/heads/main',
    'refs/tags/v1.2.0',
    'feature/x-y_z',
    'v1.0.0+build',
    'pkg@1.2.3',
    '@scope/pkg@1.2.3',
    'issue#12',
    'é',
    '日本',
    'a;b',
    'a$(b)',
  ])
    assert.is(validateRef(ok), ok);
  for (const bad of [
    '',
    '-x',
    '--upload-pack=x',
    '../x',
    'a..b',
    'a b',
    'x/',
    'x.lock',
    'refs//x',
    'a'.repeat(256),
    'x@{1}',
    '@',
    'a\\b',
    '.x',
  ]) {
    assert.throws(() => validateRef(bad), isUsage, JSON.stringify(bad));
  }
  assert.is(validateSha('ABCDEF1'), 'abcdef1');
  for (const bad of ['abc', 'xyz1234', 'a'.repeat(65), '1234567 ', '--all'])
    assert.throws(() => validateSha(bad), isUsage, bad);
});

test('redactUrls hides credentials in URLs', () => {
  assert.is(redactUrls('git clone https://user:tok3n@github.com/o/r.git'), 'git clone https://***@github.com/o/r.git');
  assert.is(redactUrls('git clone git@github.com:o/r.git'), 'git clone git@github.com:o/r.git');
  assert.is(redactUrls('ssh://deploy@host/x and https://x@y/z'), 'ssh://***@host/x and https://***@y/z');
});

test('job environment: no hook GIT_ variables, no shipkit secrets', () => {
  const config = parseShipkitConfig(
    parseYamlText(
      'secret: env:HOOK_SECRET\ntoken: env:READ_TOKEN\nrepos:\n  octo/site:\n    secret: env:SITE_SECRET\n',
      '/x/shipkit.yml',
    ),
  );
  const env = jobEnvironment(
    config,
    {
      PATH: '/bin',
      GIT_DIR: '.',
      GIT_QUARANTINE_PATH: 'q',
      HOOK_SECRET: 's',
      READ_TOKEN: 't',
      SITE_SECRET: 'u',
      SHIPKIT_SECRET: 'v',
      KEEP: 'k',
    },
    { SHIPKIT_REPO: 'octo/site' },
  );
  assert.equal(env, {
    PATH: '/bin',
    KEEP: 'k',
    GIT_TERMINAL_PROMPT: '0',
    CI: 'true',
    npm_config_update_notifier: 'false',
    SHIPKIT_REPO: 'octo/site',
  });
});

test('job environment: the notify: URLs and secrets, the report_token and the rollout secret variables are removed too', () => {
  const yaml = [
    'notify:',
    '  - slack: env:SLACK_URL',
    '  - webhook: env:HOOK_URL',
    '    secret: env:NOTIFY_SECRET',
    'report: github',
    'report_token: env:STATUS_TOKEN',
    'repos:',
    '  octo/site:',
    '    notify:',
    '      - slack: env:SITE_SLACK',
    '  octo/other:',
    '    report_token: env:OTHER_STATUS_TOKEN',
    '  octo/app:',
    '    publish: { from: dist, name: app, platform: gnu-linux, key: file:/k.asc, to: /srv/u/ }',
    '    rollout: { list: /l.txt, secret: env:FLEET_SECRET }',
    '',
  ].join('\n');
  const config = parseShipkitConfig(parseYamlText(yaml, '/x/shipkit.yml'));
  const names = [
    'SLACK_URL',
    'HOOK_URL',
    'NOTIFY_SECRET',
    'STATUS_TOKEN',
    'SITE_SLACK',
    'OTHER_STATUS_TOKEN',
    'FLEET_SECRET',
  ];
  const env = jobEnvironment(
    config,
    { PATH: '/bin', KEEP: 'k', ...Object.fromEntries(names.map((n) => [n, `value-of-${n}`])) },
    {},
  );
  assert.equal(env, {
    PATH: '/bin',
    KEEP: 'k',
    GIT_TERMINAL_PROMPT: '0',
    CI: 'true',
    npm_config_update_notifier: 'false',
  });
});

test('logs: settings from shipkit.yml, with errors naming key and line', () => {
  const parse = (yaml: string) => logSettings(parseShipkitConfig(parseYamlText(yaml, '/x/shipkit.yml')));
  assert.equal(parse('logs:\n  max_size: 2M\n  keep: 3\n').rotation, { maxSize: 2 * 1024 * 1024, keep: 3 });
  assert.equal(parse('{}').rotation, { maxSize: 10 * 1024 * 1024, keep: 5 });
  assert.throws(() => parse('logs:\n  keep: many\n'), /shipkit\.yml:2: logs\.keep: must be a number/);
  assert.throws(() => parse('logs:\n  max_size: 1\n  maxsize: 2\n'), /shipkit\.yml:3: logs\.maxsize: unknown key/);
  assert.throws(() => parse('logs:\n  keep: -1\n'), /logs\.keep: must be a whole number/);
});

test('shipkit.example.yml loads and shows every key shipkit.yml accepts', async () => {
  const file = path.join(import.meta.dirname, '../../..', 'shipkit.example.yml');
  const config = await loadShipkitConfig(file);
  const data = config.doc.data as Record<string, any>;
  for (const key of ['listen', 'data', 'secret', 'token', 'concurrency', 'repos', 'max_body', 'logs'])
    assert.ok(key in data, key);
  for (const key of ['max_size', 'keep', 'max_output']) assert.ok(key in data.logs, `logs.${key}`);
  const site = data.repos['octo/site'];
  for (const key of [
    'url',
    'branch',
    'user',
    'steps',
    'compile',
    'timeout',
    'upload',
    'release',
    'secret',
    'publish',
    'rollout',
    'node',
    'token',
  ])
    assert.ok(key in site, `repos.octo/site.${key}`);
  const repo = config.repos.get('octo/site')!;
  assert.equal(repo.steps.slice(-2), ['publish', 'rollout']);
  assert.is(repo.node?.text, '22');
  assert.equal(
    [repo.publish?.from, repo.publish?.key, repo.publish?.to],
    ['dist', '/etc/shipkit/release-key.asc', '/srv/app-updates/my-app'],
  );
  const rollout = repo.rollout?.mode === 'push' ? repo.rollout : undefined;
  assert.equal([rollout?.name, rollout?.canary, rollout?.shares, rollout?.maxFailures], ['my-app', 1, [25, 100], 0]);
  assert.equal(logSettings(config).rotation, { maxSize: 10 * 1024 * 1024, keep: 5 });
  // Its upload targets pass the upload stage's own validation.
  const { planUpload } = await import('../../../lib/stages/upload/index.ts');
  const kinds = config.repos
    .get('octo/site')!
    .upload.map((entry) => planUpload(entry, { workDir: '/srv/work', doc: config.doc }).target.kind);
  assert.equal(kinds, ['rsync', 's3', 'git']);
});

test.run();
