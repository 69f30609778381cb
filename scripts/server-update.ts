#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// server-update: tell every slave in the list to activate REPO (signed GET /?repo=REPO).
import { runCli } from '../lib/core/cli.ts';
import { ConfigError } from '../lib/core/errors.ts';
import {
  DEFAULT_LIST,
  notifyTargets,
  readSlaveList,
  requestPath,
  type TargetResult,
} from '../lib/fleet/server-update.ts';
import { validateName } from '../lib/core/names.ts';
import { loadSecret } from '../lib/http/signing.ts';
import type { Logger } from '../lib/core/log.ts';
import {
  describeRollout,
  parseWaves,
  planRollout,
  runRollout,
  type RolloutOptions,
  type Wave,
} from '../lib/fleet/rollout.ts';

const usage = `Usage: server-update REPO [--list FILE] [--secret-file FILE] [--concurrency N] [--timeout SEC]
                     [--retries N] [--wait] [--json] [--dry-run] [--insecure]
                     [--canary N] [--waves 25%,100%] [--max-failures N]

Send a signed GET /?repo=REPO to every slave in the list, all at once, and report each answer.
With --canary, --waves or --max-failures, roll out in stages instead: the first N targets alone,
then each wave of the rest, every host answering when its update is done (--wait); a wave with
more than --max-failures failed hosts halts the rollout and later hosts are not contacted.

Options:
  --list FILE         targets, one http://host:port[/path] or host:port a line
                      (default: $SERVER_UPDATE_LIST, else ${DEFAULT_LIST})
  --secret-file FILE  shared secret (default: $SHIPKIT_SECRET); required unless --insecure
  --insecure          send unsigned requests
  --concurrency N     requests in flight at once (default 32)
  --timeout SEC       per-request timeout (default 10; with --wait, 600)
  --retries N         retries on connection errors and 5xx answers (default 2)
  --wait              ask each slave to answer when its clone is done (&wait=1)
  --canary N          update the first N targets of the list alone first (default 0)
  --waves LIST        then these cumulative shares of the rest, one wave after another;
                      they must grow and end at 100% (default 100%)
  --max-failures N    failed hosts a wave may have before the rollout halts (default 0)
  --dry-run           print the targets and requests (and waves); send nothing
  --json              print an array of {target, ok, status, ms, error?}; for a staged
                      rollout {waves: [{name, failed, results}], halted, interrupted, notContacted}
  -h, --help          show this help
  --version           show the version

Exit codes: 0 every target answered 2xx, 1 some did not (or the rollout halted or was
interrupted), 2 bad arguments or configuration.
`;

await runCli(
  {
    name: 'server-update',
    usage,
    flags: {
      list: { type: 'string' },
      'secret-file': { type: 'string' },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      insecure: { type: 'boolean' },
      concurrency: { type: 'integer', default: 32, max: 10_000 },
      timeout: { type: 'seconds' },
      retries: { type: 'integer', default: 2, min: 0, max: 10 },
      canary: { type: 'integer', min: 0, max: 100_000 },
      waves: { type: 'string' },
      'max-failures': { type: 'integer', min: 0, max: 100_000 },
    },
    minPositionals: 1,
    maxPositionals: 1,
  },
  async (args, log) => {
    const repo = validateName(args._[0], 'repository name');
    const { concurrency, retries } = args;
    const timeoutMs = (args.timeout ?? (args.wait ? 600 : 10)) * 1000;
    const listFile = String(args.list ?? (process.env.SERVER_UPDATE_LIST || DEFAULT_LIST));
    const targets = await readSlaveList(listFile);
    const secret = await loadSecret({ secretFile: args['secret-file'] });
    if (!secret && !args.insecure)
      throw new ConfigError(
        'No shared secret: pass --secret-file FILE or set SHIPKIT_SECRET (or --insecure to send unsigned requests).',
      );

    const staged = args.canary !== undefined || args.waves !== undefined || args['max-failures'] !== undefined;
    const waves = staged
      ? planRollout(targets, {
          canary: args.canary ?? 0,
          shares: args.waves !== undefined ? parseWaves(String(args.waves)) : [100],
        })
      : undefined;
    const maxFailures: number = args['max-failures'] ?? 0;

    if (args['dry-run'] && waves) {
      if (args.json)
        process.stdout.write(
          `${JSON.stringify(
            waves.map((w) => ({ name: w.name, targets: w.targets.map((t) => t.url) })),
            null,
            2,
          )}\n`,
        );
      else for (const w of waves) process.stdout.write(`${w.name}: ${w.targets.map((t) => t.url).join(' ')}\n`);
      log.info(`dry run: ${waves.length} wave(s), ${targets.length} target(s), nothing sent`);
      return 0;
    }
    if (args['dry-run']) {
      const plan = targets.map((t) => ({
        target: t.url,
        request: `GET ${new URL(t.url).origin}${requestPath(t, repo, args.wait)}`,
        signed: Boolean(secret),
      }));
      if (args.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
      else
        for (const p of plan)
          process.stdout.write(`would send ${p.request}${p.signed ? ' (signed)' : ' (UNSIGNED)'}\n`);
      log.info(`dry run: ${targets.length} target(s), nothing sent`);
      return 0;
    }

    if (waves)
      return rollOut(
        waves,
        {
          repo,
          secret: secret ?? undefined,
          concurrency,
          timeoutMs: args.timeout !== undefined ? timeoutMs : 600_000,
          retries,
          maxFailures,
        },
        Boolean(args.json),
        log,
      );

    log.info(`updating ${repo} on ${targets.length} target(s)`, { concurrency });
    const out = lineWriter();
    const results = await notifyTargets(targets, {
      repo,
      secret: secret ?? undefined,
      concurrency,
      timeoutMs,
      retries,
      wait: args.wait,
      onResult: args.json ? undefined : (r) => out.line(formatResult(r)),
    });
    out.flush();
    const failed = results.filter((r) => !r.ok);
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify(
          results.map(({ target, ok, status, ms, error }) => ({ target, ok, status, ms, ...(error ? { error } : {}) })),
          null,
          2,
        )}\n`,
      );
    } else {
      process.stdout.write(
        `${results.length - failed.length}/${results.length} targets ${args.wait ? 'updated' : 'accepted'}${failed.length ? `, ${failed.length} failed` : ''}\n`,
      );
    }
    return failed.length ? 1 : 0;
  },
);

async function rollOut(
  waves: Wave[],
  options: Omit<RolloutOptions, 'signal' | 'onWaveStart' | 'onResult'>,
  json: boolean,
  log: Logger,
): Promise<number> {
  // SIGTERM/SIGINT stop the rollout between hosts: later waves are not contacted, and the report says so.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    log.warn(`${signal}: stopping the rollout; hosts not yet contacted will not be`);
    stop.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const out = lineWriter();
  const report = await runRollout(waves, {
    ...options,
    signal: stop.signal,
    onWaveStart: json ? undefined : (wave) => out.line(`${wave.name}: ${wave.targets.length} host(s)`),
    onResult: json ? undefined : (r) => out.line(formatResult(r)),
  });
  out.flush();
  const results = report.waves.flatMap((w) => w.results);
  const failed = results.filter((r) => !r.ok).length;
  if (json) {
    const brief = ({ target, ok, status, ms, error }: TargetResult) => ({
      target,
      ok,
      status,
      ms,
      ...(error ? { error } : {}),
    });
    process.stdout.write(
      `${JSON.stringify({ ...report, waves: report.waves.map((w) => ({ ...w, results: w.results.map(brief) })) }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(`${describeRollout(report)}\n`);
  }
  return failed || report.halted || report.interrupted ? 1 : 0;
}

/**
 * Lines for stdout as results come in; the lines of the results that finish in the same turn of
 * the event loop go out in one write (hundreds of answers arrive at once in a fan-out).
 */
function lineWriter() {
  let pending = '';
  const flush = () => {
    if (pending) process.stdout.write(pending);
    pending = '';
  };
  return {
    line(text: string) {
      if (!pending) setImmediate(flush);
      pending += `${text}\n`;
    },
    flush,
  };
}

function formatResult(r: TargetResult): string {
  const retries = r.attempts > 1 ? ` after ${r.attempts} attempts` : '';
  return r.ok ? `ok    ${r.target}  ${r.status}  ${r.ms}ms` : `FAIL  ${r.target}  ${r.error}${retries}  ${r.ms}ms`;
}
