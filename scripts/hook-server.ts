#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// hook-server: receive forge webhooks, verify them, journal jobs and run builds one repo at a time.
// Only the argument parser is loaded up front: --help (and a bad flag) loads and runs nothing
// of the server (in the one file its modules are not even initialised; docs/benchmarks.md).
import path from 'node:path';
import { milliseconds, runCli } from '../lib/core/cli.ts';
import { messageOf, UsageError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/log.ts';

const usage = `Usage: hook-server [--config FILE] [--listen HOST:PORT] [options]
       hook-server --end-sessions [--config FILE]
       hook-server --add-user NAME [--config FILE] < password

Receive GitHub, Gitea/Forgejo/Gogs and GitLab webhooks, verify them, journal the jobs and run
\`build\` / \`release\` for the configured repos, one job per repo at a time.

  --config FILE          shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                         ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml; with none of
                         them, ./.shipkit/shipkit.yml is created on first start)
  --listen HOST:PORT     overrides listen: (default 127.0.0.1:9000)
  --grace SEC            on SIGTERM, how long running jobs may finish (default 60)
  --drain SEC            on SIGTERM, answer this long more while /healthz says 503, so a
                         load balancer moves deliveries to another node first (default 0)
  --name NAME            this node's name among hook-servers sharing one queue: database
                         (default: the host name; shown by /healthz)
  --body-timeout SEC     time allowed for a request body (default 30)
  --header-timeout SEC   time allowed for request headers (default 10)
  --json                 JSON log lines
  -h, --help             this help

--end-sessions ends every status-page session (logs everyone out) without changing token:;
a running hook-server refuses their cookies at once. Details: hook-server --end-sessions --help.
--add-user NAME writes a status-page user's password hash into ui_users:'s file (details:
hook-server --add-user --help).

Routes:
  POST /hooks/github, /hooks/gitea, /hooks/gitlab    a forge's webhook deliveries
  POST /                   a webhook delivery, the forge told by its headers
  GET  /                   the status page, in a browser (ui: token asks for the read token
                           at /login; ui: public shows states without logs; ui: off: none)
  GET  /jobs/ID            a job's page, in a browser; its log follows live while it runs
  GET, POST /login; POST /logout    the status page's session (form field token, or name and
                           password with ui_users:; logout ends it on the server too)
  POST /approve            a named user's Approve button (session, CSRF token, same site)
  GET  /healthz            open: {"ok", "node", "leader", "db", "queued", "running"}; 503
                           while draining or the queue database is unreachable
  GET  /badge/OWNER/NAME.svg[?branch=B]   status badge (not with ui: off)
  With Authorization: Bearer TOKEN (the read token), or the status page's session:
  GET  /jobs, /jobs/ID (JSON), /jobs/ID/log[?follow=1] (text, or a live event stream)
  With Authorization: Bearer TOKEN only:
  GET  /metrics            Prometheus text
  With the read token, or a session in a browser (the Audit page):
  GET  /audit[?since=N|TIME&limit=N&format=jsonl]   the control plane's audit trail
                           (logins, replays, rollouts, rollbacks; docs/audit.md)
`;

const endSessionsUsage = `Usage: hook-server --end-sessions [--new-token] [--config FILE] [--json]

End every status-page session issued until now, without changing token: (which would also
change the read token of every script and bearer client). With --new-token (the token leaked),
also write a new read token into token:'s file (token: file:PATH), printed once on stdout: a
running hook-server follows the file, so the old token stops working within a second. It writes the moment into
DATA/ended-sessions.json; a running hook-server reads it at the next request and refuses those
cookies from then on (no restart needed), and so does every later start. Everyone logs in again.
Run it as the user hook-server runs as (or root: the file is then given to DATA's owner).

  --new-token            also replace the read token (token: must be file:PATH)
  --config FILE          shipkit.yml (the same search as hook-server's own; never created)
  --json                 JSON log lines
  -h, --help             this help
Exit codes: 0 done, 1 the file could not be written, 2 bad arguments or configuration.
`;

const addUserUsage = `Usage: hook-server --add-user NAME [--config FILE] [--json]   (password on stdin)

Add the status-page user NAME to the file that ui_users: names, or give NAME a new password: the
first line of stdin is the password, kept as a salted scrypt hash (the file is made 0600). A
running hook-server reads the file again at the next request: NAME can log in with a name and a
password at once, and a new password ends NAME's sessions. A user approves releases on the status
page where an environment's approvals: from: lists ui:NAME. Remove a user by deleting the line.

  --config FILE          shipkit.yml (the same search as hook-server's own; never created)
  --json                 JSON log lines
  -h, --help             this help
Exit codes: 0 done, 1 the file could not be written, 2 bad arguments, configuration or password.
`;

// A delivery worker (`workers:` in shipkit.yml) is this script started again by hook-server
// with WORKER_ENV (lib/server/workers.ts) set.
if (process.env.SHIPKIT_DELIVERY_WORKER === '1') await deliveryWorker();
else
  await runCli(
    {
      name: 'hook-server',
      usage,
      // One write per turn of the event loop for the lines of a burst of deliveries.
      logPerTurn: true,
      flags: {
        config: { type: 'string' },
        listen: { type: 'string' },
        json: { type: 'boolean' },
        grace: { type: 'seconds' },
        drain: { type: 'seconds' },
        name: { type: 'string' },
        'body-timeout': { type: 'seconds' },
        'header-timeout': { type: 'seconds' },
      },
      maxPositionals: 0,
      // git for its own checks of pushes and tags; its jobs run build and release, which need both.
      needs: ['bash', 'git'],
      commands: {
        '--end-sessions': {
          usage: endSessionsUsage,
          flags: {
            'end-sessions': { type: 'boolean' },
            'new-token': { type: 'boolean' },
            config: { type: 'string' },
            json: { type: 'boolean' },
          },
          maxPositionals: 0,
        },
        '--add-user': {
          usage: addUserUsage,
          flags: { 'add-user': { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' } },
          maxPositionals: 0,
        },
      },
    },
    async (args, log) => {
      const [
        { findOrCreateConfig, firstRunMessage },
        { resolveServerSecrets, startHookServer },
        { parseListen },
        { findConfigFile, loadShipkitConfig },
      ] = await Promise.all([
        import('../lib/config/first-run.ts'),
        import('../lib/server/hook-server.ts'),
        import('../lib/http/server.ts'),
        import('../lib/config/shipkit-yml.ts'),
      ]);
      if (args.command === '--add-user') {
        const config = await loadShipkitConfig(findConfigFile(args.config));
        return addUser(config, String(args['add-user'] ?? ''), log);
      }
      if (args.command === '--end-sessions') {
        const { endAllSessions, replaceTokenFile } = await import('../lib/web/ended-sessions.ts');
        const config = await loadShipkitConfig(findConfigFile(args.config));
        const tokenFile = tokenFileOf(config);
        if (args['new-token'] && !tokenFile)
          throw new UsageError(
            `--new-token writes token:'s file, but token: in ${config.file} is ${config.token ? 'not file:PATH' : 'not set'}; change it there and restart hook-server.`,
          );
        const { file, state, replaced } = await endAllSessions(config.data);
        if (args['new-token']) {
          process.stdout.write(`${await replaceTokenFile(tokenFile!)}\n`);
          log.info('the read token is replaced; a running hook-server takes the new one within a second', {
            file: tokenFile,
          });
        }
        if (replaced) log.warn(`${file} could not be read (${replaced}); replaced`);
        if (config.queue) {
          const { endAllSharedSessions } = await import('../lib/web/ended-sessions-db.ts');
          const { resolveQueue } = await import('../lib/db/primary.ts');
          const db = await resolveQueue(config.queue, {
            log,
            baseDir: path.dirname(config.file),
            where: `${config.file}: queue`,
          });
          await endAllSharedSessions(db, state.before, log);
        }
        await recordEndSessions(config, Boolean(args['new-token']), state.before, log);
        log.info(
          `status-page sessions issued before ${new Date(state.before).toISOString()} are ended${config.queue ? ' on every hook-server of the queue database' : ''}; everyone logs in again`,
          { file },
        );
        return 0;
      }
      // Caught before anything is announced: a SIGTERM sent the moment "listening" is printed (or
      // during startup) must still stop cleanly and exit 0, not kill the process outright.
      const signalled = new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      const choice = await findOrCreateConfig(args.config);
      const config = await loadShipkitConfig(choice.file);
      const listen = parseListen(args.listen ?? config.listen);
      const { secrets, token, notify, report } = await resolveServerSecrets(config);
      const server = await startHookServer({
        config,
        listen,
        secrets,
        token,
        tokenFile: tokenFileOf(config),
        notify,
        report,
        log,
        maxBody: config.maxBody,
        graceMs: milliseconds(args.grace),
        drainMs: milliseconds(args.drain),
        name: nodeName(args.name),
        bodyTimeoutMs: milliseconds(args['body-timeout']),
        headersTimeoutMs: milliseconds(args['header-timeout']),
      });
      if (choice.created) process.stdout.write(firstRunMessage(choice.created, server.url));
      log.info(`hook-server listening on ${server.url}`, {
        config: config.file,
        data: config.data,
        repos: config.repos.size,
        readApi: token ? 'on' : 'off',
      });
      const signal = await signalled;
      log.info(`${signal}: no new deliveries; waiting for running jobs`);
      await server.stop().catch((error) => log.error(`stopping failed: ${messageOf(error)}`));
      log.info('hook-server stopped');
      return 0;
    },
  );

/** One delivery worker (lib/server/delivery-worker.ts): told what to serve by the primary over IPC. */
/** `--add-user NAME`: the first line of stdin, hashed into ui_users:'s file. */
async function addUser(config: { file: string; uiUsers?: string }, name: string, log: Logger): Promise<number> {
  if (!config.uiUsers)
    throw new UsageError(`${config.file} has no ui_users: (the file of status-page users); add ui_users: FILE first.`);
  const { addUiUser, MAX_PASSWORD_BYTES } = await import('../lib/web/ui-users.ts');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if ((size += (chunk as Buffer).length) > MAX_PASSWORD_BYTES + 2) break;
  }
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  const added = await addUiUser(config.uiUsers, name, password);
  log.info(`${added ? 'added' : 'gave a new password to'} status-page user ${name}`, { file: config.uiUsers });
  return 0;
}

async function deliveryWorker(): Promise<void> {
  delete process.env.SHIPKIT_DELIVERY_WORKER;
  const [{ serveDeliveryWorker }, { createLogger }] = await Promise.all([
    import('../lib/server/delivery-worker.ts'),
    import('../lib/core/log.ts'),
  ]);
  type Channel = import('../lib/server/delivery-worker.ts').Channel;
  const log = createLogger({
    json: process.argv.includes('--json') ? true : undefined,
    fields: { worker: process.pid },
  });
  // The primary stops its workers when it is told to stop; a signal sent to the whole process
  // group must not cut their open requests short. Its death ends them (node:cluster exits a
  // worker whose primary is gone).
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => {});
  process.exitCode = await serveDeliveryWorker(process as unknown as Channel, log);
  process.disconnect();
}

/** `--end-sessions` (and `--new-token`) in the audit trail, as the command's user on this machine. */
async function recordEndSessions(
  config: import('../lib/audit/trail.ts').AuditConfig,
  newToken: boolean,
  before: number,
  log: import('../lib/core/log.ts').Logger,
): Promise<void> {
  const [{ AuditTrail, commandActor }, { hostname }] = await Promise.all([
    import('../lib/audit/trail.ts'),
    import('node:os'),
  ]);
  const trail = await AuditTrail.open(config, 'hook-server --end-sessions', { log, node: hostname() });
  try {
    const entry = { actor: commandActor(), from: 'local', subject: null };
    await trail.record({ ...entry, action: 'sessions.end', detail: { before: new Date(before).toISOString() } });
    if (newToken)
      await trail.record({ ...entry, action: 'token.rotate', detail: { file: tokenFileOf(config) ?? null } });
  } finally {
    await trail.close();
  }
}

/** `token: file:PATH` as a path (relative to the config file), else undefined. */
function tokenFileOf(config: { file: string; token?: string }): string | undefined {
  return config.token?.startsWith('file:') ? path.resolve(path.dirname(config.file), config.token.slice(5)) : undefined;
}

/** `--name`: letters, digits and . _ : @ ( ) - only (it is logged and stored), 1-64 of them. */
function nodeName(name: string | undefined): string | undefined {
  if (name !== undefined && !/^[A-Za-z0-9._:@() -]{1,64}$/.test(name))
    throw new UsageError('Option --name must be 1-64 letters, digits, spaces or . _ : @ ( ) -.');
  return name;
}
