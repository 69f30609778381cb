#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// server-update: tell every slave in the list to activate REPO (signed GET /?repo=REPO).
import { parsePositiveInt, parseSeconds, runCli } from '../lib/core/cli.ts';
import { ConfigError } from '../lib/core/errors.ts';
import { DEFAULT_LIST, notifyTargets, readSlaveList, requestPath, type TargetResult } from '../lib/fleet/server-update.ts';
import { validateName } from '../lib/core/names.ts';
import { loadSecret } from '../lib/http/signing.ts';

const usage = `Usage: server-update REPO [--list FILE] [--secret-file FILE] [--concurrency N] [--timeout SEC]
                     [--retries N] [--wait] [--json] [--dry-run] [--insecure]

Send a signed GET /?repo=REPO to every slave in the list, all at once, and report each answer.

Options:
  --list FILE         targets, one http://host:port[/path] or host:port a line
                      (default: $SERVER_UPDATE_LIST, else ${DEFAULT_LIST})
  --secret-file FILE  shared secret (default: $SHIPKIT_SECRET); required unless --insecure
  --insecure          send unsigned requests
  --concurrency N     requests in flight at once (default 32)
  --timeout SEC       per-request timeout (default 10; with --wait, 600)
  --retries N         retries on connection errors and 5xx answers (default 2)
  --wait              ask each slave to answer when its clone is done (&wait=1)
  --dry-run           print the targets and requests; send nothing
  --json              print an array of {target, ok, status, ms, error?}
  -h, --help          show this help
  --version           show the version

Exit codes: 0 every target answered 2xx, 1 some did not, 2 bad arguments or configuration.
`;

await runCli({
  name: 'server-update',
  usage,
  string: ['list', 'secret-file', 'concurrency', 'timeout', 'retries'],
  boolean: ['wait', 'json', 'dry-run', 'insecure'],
  minPositionals: 1,
  maxPositionals: 1,
}, async (args, log) => {
  const repo = validateName(args._[0], 'repository name');
  const concurrency = args.concurrency !== undefined ? parsePositiveInt(args.concurrency, 'concurrency', { max: 10_000 }) : 32;
  const timeoutMs = (args.timeout !== undefined ? parseSeconds(args.timeout, 'timeout') : args.wait ? 600 : 10) * 1000;
  const retries = args.retries !== undefined ? parsePositiveInt(args.retries, 'retries', { min: 0, max: 10 }) : 2;
  const listFile = String(args.list ?? (process.env.SERVER_UPDATE_LIST || DEFAULT_LIST));
  const targets = await readSlaveList(listFile);
  const secret = await loadSecret({ secretFile: args['secret-file'] });
  if (!secret && !args.insecure) throw new ConfigError('No shared secret: pass --secret-file FILE or set SHIPKIT_SECRET (or --insecure to send unsigned requests).');

  if (args['dry-run']) {
    const plan = targets.map((t) => ({ target: t.url, request: `GET ${new URL(t.url).origin}${requestPath(t, repo, args.wait)}`, signed: Boolean(secret) }));
    if (args.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else for (const p of plan) process.stdout.write(`would send ${p.request}${p.signed ? ' (signed)' : ' (UNSIGNED)'}\n`);
    log.info(`dry run: ${targets.length} target(s), nothing sent`);
    return 0;
  }

  log.info(`updating ${repo} on ${targets.length} target(s)`, { concurrency });
  const results = await notifyTargets(targets, {
    repo, secret: secret ?? undefined, concurrency, timeoutMs, retries, wait: args.wait,
    onResult: args.json ? undefined : (r) => process.stdout.write(`${formatResult(r)}\n`),
  });
  const failed = results.filter((r) => !r.ok);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results.map(({ target, ok, status, ms, error }) => ({ target, ok, status, ms, ...(error ? { error } : {}) })), null, 2)}\n`);
  } else {
    process.stdout.write(`${results.length - failed.length}/${results.length} targets ${args.wait ? 'updated' : 'accepted'}${failed.length ? `, ${failed.length} failed` : ''}\n`);
  }
  return failed.length ? 1 : 0;
});

function formatResult(r: TargetResult): string {
  const retries = r.attempts > 1 ? ` after ${r.attempts} attempts` : '';
  return r.ok ? `ok    ${r.target}  ${r.status}  ${r.ms}ms` : `FAIL  ${r.target}  ${r.error}${retries}  ${r.ms}ms`;
}
