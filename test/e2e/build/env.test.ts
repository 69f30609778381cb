// build with a repo's `env:` (docs/design.md): literal values and env:/file: secrets given to the
// build's commands (not to the pull), secrets masked in logs.txt, the job's output and the read
// API however the build prints them, and names that would override shipkit's refused.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { secretForms } from '../../../lib/jobs/masking.ts';
import { deliverGithub, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { makeSite } from '../../_helpers/build.ts';
import { startScript } from '../../_helpers/common.ts';

const FILE_SECRET = `file-s3cret/${randomUUID().slice(0, 8)}+=&?`;
const ENV_SECRET = `env-s3cret ${randomUUID().slice(0, 8)}`;

// Prints both secrets every way a build might: plain, cut into two writes with a pause between,
// URL-encoded, base64 at each of the three alignments, inside JSON; and exits 0.
const PRINT_SECRETS = `#!/bin/sh
set -e
for name in API_KEY DB_PASS; do
  eval "v=\\$$name"
  echo "plain $name=$v"
  half=$(printf %s "$v" | cut -c1-5)
  rest=$(printf %s "$v" | cut -c6-)
  printf 'split %s=%s' "$name" "$half"; sleep 0.3; printf '%s\\n' "$rest"
  printf '%s' "$half" >&2; sleep 0.2; printf '%s (stderr)\\n' "$rest" >&2
  node -e 'console.log("url " + encodeURIComponent(process.argv[1]))' -- "$v"
  for prefix in "" "a" "ab"; do printf 'b64 %s\\n' "$(printf '%s%s' "$prefix" "$v" | base64 -w0)"; done
  printf '{"key":"%s"}' "$v" | base64 -w0; echo
done
echo "NODE_ENV=$NODE_ENV"
mkdir -p out
printf '%s\\n%s\\n%s\\n' "$NODE_ENV" "$API_KEY" "$DB_PASS" > out/env.txt
`;

async function secretSite() {
  const site = await makeSite({
    'package.json': JSON.stringify({
      name: 'site',
      version: '1.0.0',
      private: true,
      scripts: { build: 'sh print-secrets.sh' },
    }),
    'print-secrets.sh': PRINT_SECRETS,
  });
  const keyFile = path.join(site.base, 'api-key');
  writeFileSync(keyFile, `${FILE_SECRET}\n`, { mode: 0o600 });
  const trace = path.join(site.base, 'git-trace.txt');
  site.writeConfig(
    [
      'steps: [pull, compile]',
      'env:',
      '  NODE_ENV: production',
      `  API_KEY: file:${keyFile}`,
      '  DB_PASS: env:SITE_DB_PASS',
      // Would make git write here, if the pull step's git saw the build's env.
      `  GIT_TRACE: ${trace}`,
    ].join('\n'),
    'secret: env:HOOK_SECRET\ntoken: env:HOOK_TOKEN',
  );
  return { site, trace };
}

function assertNoSecret(text: string, where: string) {
  for (const form of [FILE_SECRET, ENV_SECRET].flatMap(secretForms)) {
    assert.not.ok(text.includes(form), `${where} holds ${JSON.stringify(form)}:\n${text.slice(-3000)}`);
  }
  assert.not.ok(text.includes(FILE_SECRET.slice(5)), `${where} holds the second half of a split secret`);
}

test('build: env: values reach the build commands, not the pull; secrets are *** in logs.txt in every form', async () => {
  const { site, trace } = await secretSite();
  const r = await site.run('build', ['octo/site', '--job-id', 'env-1'], { SITE_DB_PASS: ENV_SECRET });
  assert.is(r.exitCode, 0, r.stderr + site.logText().slice(-3000));
  assert.equal(readFileSync(path.join(site.repoDir, 'out/env.txt'), 'utf8').split('\n').slice(0, 3), [
    'production',
    FILE_SECRET,
    ENV_SECRET,
  ]);
  assert.not.ok(existsSync(trace), 'the pull step ran git without the build env');
  const log = site.logText();
  assertNoSecret(log, 'logs.txt');
  assertNoSecret(r.stdout + r.stderr, 'the terminal output');
  assert.match(log, /\| plain API_KEY=\*\*\*\n/);
  assert.match(log, /\| split DB_PASS=\*\*\*\n/);
  assert.match(log, /\| url \*\*\*\n/);
  assert.match(log, /\| NODE_ENV=production\n/, 'a literal value is not masked');
  assert.is(log.match(/\| b64 [^\n]*\*\*\*/g)?.length, 6, 'each base64 alignment of each secret masked');
});

test('hook-server: the job output and GET /jobs/ID/log hold no secret either', async () => {
  const { site } = await secretSite();
  const hookSecret = `hook-${randomUUID()}`;
  const token = `token-${randomUUID()}`;
  const server = await startScript('hook-server', ['--config', site.config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: hookSecret, HOOK_TOKEN: token, SITE_DB_PASS: ENV_SECRET },
  });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: site.first }), hookSecret);
    assert.is(res.status, 202);
    const job = await waitForJobState(server.url, token, res.json.job, ['succeeded', 'failed'], 90_000);
    const output = readFileSync(path.join(site.data, 'jobs', job.id, 'output.log'), 'utf8');
    assert.is(job.state, 'succeeded', `${JSON.stringify(job)}\n${output}\n${server.output()}`);
    const api = await fetch(`${server.url}/jobs/${job.id}/log`, { headers: { Authorization: `Bearer ${token}` } });
    assert.is(api.status, 200);
    const text = await api.text();
    assert.match(text, /\| split API_KEY=\*\*\*\n/);
    assertNoSecret(text, 'GET /jobs/ID/log');
    assertNoSecret(output, 'output.log');
    assertNoSecret(site.logText(), 'logs.txt');
    assertNoSecret(server.output(), "hook-server's own output");
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test("a build that prints its secrets and fails: the step's last lines and error on the terminal, and the log, hold ***", async () => {
  const site = await makeSite({ 'README.md': 'hi\n' });
  const keyFile = path.join(site.base, 'api-key');
  writeFileSync(keyFile, `${FILE_SECRET}\n`, { mode: 0o600 });
  site.writeConfig(
    [
      'steps: [pull, compile]',
      `compile: 'printf "key=%s\\n" "$API_KEY"; printf "pass=%s" "$DB_PASS" | base64; exit 3'`,
      'env:',
      `  API_KEY: file:${keyFile}`,
      '  DB_PASS: env:SITE_DB_PASS',
    ].join('\n'),
  );
  const r = await site.run('build', ['octo/site'], { SITE_DB_PASS: ENV_SECRET });
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /failed at step compile: /);
  assert.match(r.stderr, /\| key=\*\*\*/, 'the last lines are shown, masked');
  assertNoSecret(r.stdout + r.stderr, 'the terminal output');
  assertNoSecret(site.logText(), 'logs.txt');
});

test('env: names that are not variables or that shipkit sets are refused at config load (exit 2, FILE:LINE)', async () => {
  const site = await makeSite({ 'README.md': 'hi\n' });
  for (const [name, why] of [
    ['PATH', /cannot be overridden/],
    ['SHIPKIT_REPO', /cannot be overridden/],
    ['shipkit_x', /cannot be overridden/],
    ['GIT_SSH_COMMAND', /cannot be overridden/],
    ['1BAD', /not a valid variable name/],
    ['A-B', /not a valid variable name/],
  ] as const) {
    site.writeConfig(`env:\n  OK: yes\n  ${name}: x`);
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`shipkit\\.yml:8: repos\\.octo/site\\.env\\.${name}: `));
    assert.match(r.stderr, why);
    assert.not.ok(existsSync(site.repoDir), 'nothing was cloned');
  }
  site.writeConfig('env:\n  API_KEY: env:NOT_SET_ANYWHERE');
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /shipkit\.yml:7: env\.API_KEY: environment variable NOT_SET_ANYWHERE is not set/);
  assert.not.ok(existsSync(site.repoDir), 'nothing was cloned');
});

test.run();
