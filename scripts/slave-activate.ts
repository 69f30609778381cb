#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// slave-activate: replace ROOT/REPO with a fresh clone, once or on signed requests.
import { activateRepo, defaultRoot, DEFAULT_BASE } from '../lib/fleet/activate.ts';
import { runCli, type Args, type CliSpec, type FlagSpec } from '../lib/core/cli.ts';
import { ConfigError } from '../lib/core/errors.ts';
import { parseListen, startHttpServer } from '../lib/http/server.ts';
import type { Logger } from '../lib/core/log.ts';
import { validateName } from '../lib/core/names.ts';
import { loadSecret } from '../lib/http/signing.ts';
import { createSlaveService, DEFAULT_MAX_PARALLEL } from '../lib/fleet/slave-server.ts';
import { parsePrefix } from '../lib/http/control-request.ts';

const usage = `Usage:
  slave-activate REPO [--root DIR] [--base URL]
  slave-activate --serve [--listen HOST:PORT] [--file PATH] [--root DIR] [--base URL]
                 [--prefix PATH] [--max-parallel N] [--secret-file FILE | --insecure]

Replace ROOT/REPO with a fresh clone of BASE/REPO.git. The clone is made in a temp folder
beside ROOT/REPO and swapped in by rename: if it fails, the previous ROOT/REPO is untouched.

Options:
  --root DIR          where clones live (default: $SLAVE_ROOT, else ~/repos)
  --base URL          clone from BASE/REPO.git; a URL or a local folder
                      (default: $SLAVE_BASE_URL, else ${DEFAULT_BASE})
  --clone-timeout S   give up on a clone after S seconds (default 600)
  --json              print the result as JSON
  -h, --help          show this help
  --version           show the version

--serve listens for signed GET /?repo=NAME requests (see server-update) and runs the same
activation for each; its own options (--listen, --file, --secret-file, ...) are in
\`slave-activate --serve --help\`.
Exit codes: 0 done, 1 the clone failed, 2 bad arguments or configuration.
`;

const serveUsage = `Usage: slave-activate --serve [--listen HOST:PORT] [--file PATH] [--root DIR] [--base URL]
                      [--prefix PATH] [--max-parallel N] [--secret-file FILE | --insecure] [options]

Listens for signed GET /?repo=NAME requests (see server-update) and replaces ROOT/REPO with a
fresh clone of BASE/REPO.git for each, in the background, one at a time per repo.

Options:
  --listen HOST:PORT  address to listen on (default 0.0.0.0:8080)
  --prefix PATH       serve under PATH (/hooks/slave), directly or behind a proxy that
                      strips it (default: $SLAVE_PREFIX, else /)
  --max-parallel N    clones that run at once, across repos; the rest wait (default 4)
  --secret-file FILE  shared secret (default: $SHIPKIT_SECRET); required unless --insecure
  --insecure          accept unsigned requests (only on a trusted network)
  --file PATH         also serve this file on GET / (unsigned, for a browser)
  --root DIR          where clones live (default: $SLAVE_ROOT, else ~/repos)
  --base URL          clone from BASE/REPO.git (default: $SLAVE_BASE_URL, else ${DEFAULT_BASE})
  --clone-timeout S   give up on a clone after S seconds (default 600)
  --header-timeout S  time a client has to send its headers (default 10)
  --drain-timeout S   on SIGTERM, wait this long for a running clone (default 120)
  --json              log JSON lines

Requests:
  GET /?repo=NAME         202 {"repo","state":"queued"}; runs in the background
  GET /?repo=NAME&wait=1  200 {"ok":true,...} or 500 {"ok":false,"error":...}
  GET /status             last result per repo
Exit codes: 0 stopped cleanly, 2 bad arguments or configuration.
`;

const cloneFlags: Record<string, FlagSpec> = {
  root: { type: 'string' },
  base: { type: 'string' },
  'clone-timeout': { type: 'seconds', default: 600 },
  json: { type: 'boolean' },
};

const spec: CliSpec = {
  name: 'slave-activate',
  usage,
  flags: cloneFlags,
  minPositionals: 1,
  maxPositionals: 1,
  needs: ['bash', 'git'],
  commands: {
    '--serve': {
      usage: serveUsage,
      flags: {
        ...cloneFlags,
        serve: { type: 'boolean' },
        listen: { type: 'string', default: '0.0.0.0:8080' },
        file: { type: 'string' },
        'secret-file': { type: 'string' },
        insecure: { type: 'boolean' },
        'header-timeout': { type: 'seconds', default: 10 },
        'drain-timeout': { type: 'seconds', default: 120 },
        prefix: { type: 'string' },
        'max-parallel': { type: 'integer', default: DEFAULT_MAX_PARALLEL, max: 256 },
      },
      maxPositionals: 0,
      needs: ['bash', 'git'],
    },
  },
};

function settings(args: Args) {
  return {
    root: String(args.root ?? defaultRoot()),
    base: String(args.base ?? (process.env.SLAVE_BASE_URL || DEFAULT_BASE)),
    timeoutMs: args['clone-timeout'] * 1000,
  };
}

async function activateOnce(args: Args, log: Logger): Promise<number> {
  const repo = validateName(args._[0], 'repository name');
  const { root, base, timeoutMs } = settings(args);
  const result = await activateRepo({ root, base, repo, log, timeoutMs, lockWaitMs: timeoutMs });
  if (args.json) process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
  else process.stdout.write(`${result.path} ${result.head}\n`);
  return 0;
}

async function serve(args: Args, log: Logger): Promise<number> {
  const { root, base, timeoutMs } = settings(args);
  const secret = await loadSecret({ secretFile: args['secret-file'] });
  if (!secret && !args.insecure)
    throw new ConfigError(
      'No shared secret: pass --secret-file FILE or set SHIPKIT_SECRET (or --insecure to accept unsigned requests).',
    );
  if (secret && args.insecure) log.warn('--insecure ignored: a secret is set, so requests must be signed');
  if (!secret) log.warn('accepting UNSIGNED requests (--insecure): anyone who can reach this port can trigger clones');
  const listen = parseListen(args.listen, '0.0.0.0');
  const headerTimeoutMs = args['header-timeout'] * 1000;
  const drainMs = args['drain-timeout'] * 1000;
  const prefix = parsePrefix(String(args.prefix ?? process.env.SLAVE_PREFIX ?? ''));
  const maxParallel: number = args['max-parallel'];

  const service = createSlaveService({
    secret,
    file: args.file ? String(args.file) : undefined,
    log,
    prefix,
    maxParallel,
    activate: (repo) => activateRepo({ root, base, repo, log: log.child({ repo }), timeoutMs, lockWaitMs: timeoutMs }),
  });
  const server = await startHttpServer(service.handle, {
    ...listen,
    headersTimeoutMs: headerTimeoutMs,
    requestTimeoutMs: timeoutMs + 60_000, // &wait=1 holds the request for a whole clone
    maxHeaderSize: 8 * 1024,
  });
  log.info(`listening on ${server.url}${prefix}`, { root, base, maxParallel });

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info(`${signal}: no new requests; finishing running activations`);
  const closing = server.close(drainMs);
  const finished = await service.drain(drainMs);
  if (!finished)
    log.warn(`running activations did not finish in ${drainMs / 1000}s; their temp clones are cleared on the next run`);
  await closing;
  return 0;
}

await runCli(spec, (args, log) => (args.command === '--serve' ? serve(args, log) : activateOnce(args, log)));
