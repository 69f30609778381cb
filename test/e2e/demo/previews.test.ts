// npm run demo -- --previews (tools/demo-previews.ts, the "Try it" of docs/previews.md) as a child
// process: a real nginx, hook-server and launchfit; pr-1 answers version 1 through nginx, then
// version 2 after the push, then 404 once closed; exit 0, its temp folder gone, no nginx,
// launchfit or app of it left. Without nginx it exits 2 and says what to install.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NGINX } from '../../fixtures/nginx.ts';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand } from '../../_helpers/common.ts';

const demo = (args: string[], env: Record<string, string> = {}) =>
  runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), path.join(ROOT, 'tools/demo.ts'), ...args],
    { timeoutMs: 240_000, env },
  );

test('the previews demo: open, push and close answer through nginx in order; exit 0, nothing left', async () => {
  if (!existsSync(NGINX)) return void console.log('skipped: nginx is not installed');
  const r = await demo(['--previews']);
  const out = r.stdout;
  assert.is(r.exitCode, 0, out + r.stderr);
  const found = /http:\/\/pr-1\.preview\.localhost:\d+\//.exec(out)?.[0];
  assert.ok(found, out);
  const url = found.replace(/\./g, '\\.');
  const lines = out.split('\n');
  const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
  const steps = [
    /delivered pull_request opened: 202 .*"preview":"pr-1"/,
    new RegExp(`\\+ +\\d+ ms  ${url} answers 200: demo/site version 1, pull request #1$`),
    /curl -H 'Host: pr-1\.preview\.localhost' http:\/\/127\.0\.0\.1:\d+\//,
    /delivered pull_request synchronize: 202/,
    new RegExp(`\\+ +\\d+ ms  ${url} answers 200: demo/site version 2, pull request #1$`),
    /delivered pull_request closed: 202/,
    new RegExp(`\\+ +\\d+ ms  ${url} answers 404`),
    /torn down: launchfit and the app stopped/,
    /demo done in [\d.]+ s; everything it started is stopped/,
  ].map(at);
  assert.ok(
    steps.every((i) => i >= 0),
    `every step printed:\n${out}`,
  );
  assert.equal(
    [...steps].sort((a, b) => a - b),
    steps,
    `the steps come in order:\n${out}`,
  );
  const dir = /everything in (\S+)/.exec(out)![1];
  assert.ok(dir.length < 20, `a short folder of /tmp: ${dir}`);
  assert.not.ok(existsSync(dir), 'the temp folder is gone');
  assert.equal(
    describeProcesses(processesUsing(dir)),
    '',
    'no nginx, hook-server, launchfit or app of the demo is left',
  );
});

test('without nginx the previews demo exits 2 and says to install it', async () => {
  const r = await demo(['--previews'], { SHIPKIT_DEMO_NGINX: '/nonexistent/nginx' });
  assert.is(r.exitCode, 2, r.stdout + r.stderr);
  assert.match(r.stderr, "no nginx at /nonexistent/nginx: install Debian's nginx package (apt-get install nginx).");
  assert.is(r.stdout, '');
});

test.run();
