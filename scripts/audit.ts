#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// audit [--since] | audit --verify: the control plane's audit trail that hook-server keeps in DATA
// (or in the queue database with queue:), printed, or its hash chain checked (docs/audit.md).
import { runCli, type Args } from '../lib/core/cli.ts';
import type { Logger } from '../lib/core/log.ts';

const usage = `Usage: audit [--since N|TIME] [--limit N] [--config FILE] [--json]   (shipkit audit …)
       audit --verify [--config FILE] [--json]

The control plane's audit trail: logins (and failed ones), logouts, ended sessions and new read
tokens, replayed deliveries, rollout starts, steps, halts, resumes and ends, rollbacks and
forgotten hosts, each with who, from where and when. hook-server keeps it in
DATA/audit/audit.jsonl, or with queue: in the queue database; \`GET /audit\` and the status page's
Audit page show it too. Lines are hash-chained like the release ledger: --verify checks them.

  --since N|TIME   the entries after entry N, or from a time on (2026-05-01, 2026-05-01T12:00Z);
                   without it, the newest
  --limit N        at most N entries (default 100)
  --config FILE    shipkit.yml (the same search as hook-server's)
  --json           the entries as stored, one JSON object a line
  --verify         check the whole chain: every entry numbered on, each naming the sha256 of the
                   line before, a cut of old entries (audit: keep_days) recorded by a retention entry,
                   and the trail against its head kept in DATA/audit-head.json (a cut end, or a
                   chain made again from some entry on)
  -h, --help       this help
Text from requests (repo, ref, user names) is printed with control characters as \\u escapes.
Exit codes: 0 printed or verified, 2 bad arguments or configuration, or the chain is broken (the
message names the first entry that breaks it), or the trail was cut or rewritten (the message
says which, against the kept head).
`;

async function openStore(args: Args, log: Logger) {
  const { findConfigFile, loadShipkitConfig } = await import('../lib/config/shipkit-yml.ts');
  const { openAuditStore } = await import('../lib/audit/trail.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  return openAuditStore(config, 'shipkit audit', { log });
}

async function verifyMain(args: Args, log: Logger): Promise<number> {
  const { verifyAgainstKept } = await import('../lib/audit/head.ts');
  const store = await openStore(args, log);
  try {
    const { entries, head, torn, kept } = await verifyAgainstKept(await store.readAll(), store.head);
    if (torn) log.warn('the last line is torn (its write never finished, so it was never acknowledged); left out');
    if (!kept && head)
      log.warn(
        `no head of the trail is kept in ${store.head?.file} yet, so a cut of its end cannot be told: it is kept from the next entry on`,
      );
    const first = entries[0]?.n;
    const against = kept ? `; it holds the head kept in ${store.head?.file} (entry ${kept.n})` : '';
    if (args.json)
      process.stdout.write(
        `${JSON.stringify({ ok: true, entries: entries.length, first, head, kept: kept ?? null })}\n`,
      );
    else if (!head) process.stdout.write(`Nothing recorded yet in ${store.where()}.\n`);
    else
      process.stdout.write(
        `The audit trail verifies: entries ${first} to ${head.n}${first > 1 ? ` (1 to ${first - 1} cut, as a retention entry records)` : ''}; head sha256 ${head.hash}${against}\n`,
      );
    return 0;
  } finally {
    await store.close();
  }
}

async function listMain(args: Args, log: Logger): Promise<number> {
  const [{ DEFAULT_LIMIT, parseSince }, { auditText }] = await Promise.all([
    import('../lib/audit/query.ts'),
    import('../lib/audit/show.ts'),
  ]);
  const query = { since: args.since ? parseSince(args.since) : undefined, limit: args.limit ?? DEFAULT_LIMIT };
  const store = await openStore(args, log);
  try {
    const rows = await store.read(query);
    if (args.json) process.stdout.write(rows.map((r) => `${r.line}\n`).join(''));
    else if (rows.length === 0)
      process.stdout.write(`No entries${args.since ? ' since then' : ''} in ${store.where()}.\n`);
    else process.stdout.write(rows.map((r) => `${auditText(r.entry)}\n`).join(''));
    return 0;
  } finally {
    await store.close();
  }
}

await runCli(
  {
    name: 'audit',
    usage,
    flags: {
      since: { type: 'string' },
      limit: { type: 'integer', min: 1, max: 10_000 },
      config: { type: 'string' },
      json: { type: 'boolean' },
    },
    maxPositionals: 0,
    commands: {
      '--verify': {
        usage,
        flags: { verify: { type: 'boolean' }, config: { type: 'string' }, json: { type: 'boolean' } },
        maxPositionals: 0,
      },
    },
  },
  (args, log) => (args.command === '--verify' ? verifyMain(args, log) : listMain(args, log)),
);
