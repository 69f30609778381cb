// Preview builds on workers (docs/previews.md, "Builds on workers"): with `previews.build_on:
// workers` the leading hook-server sends each build through pg-boss (a queue per repo); a `shipkit
// worker` with the repo runs `build REPO --preview N` in its own DATA, packs the built tree (no .git)
// into shipkit.preview_builds with its log, and removes its folder; the leader unpacks it as the
// preview's uid and runs it. The preview machine runs every preview; workers only build.
import { createHash } from 'node:crypto';
import { appendFile, chown, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type PgBoss from 'pg-boss';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { messageOf, ValidationError } from '../core/errors.ts';
import { ensureDir, readFileTail } from '../core/fs.ts';
import { HardLinksAsFiles } from '../core/tar-links.ts';
import type { Logger } from '../core/log.ts';
import { findUser, numericAccount, type UnixAccount } from '../core/unix-user.ts';
import type { Queryable } from '../db/connect.ts';
import { STORED_JOB_ID_PATTERN } from '../jobs/job-id.ts';
import { previewBuildsQueue } from '../jobs/pg/records.ts';
import { previewBuildPaths, previewFolder } from './build.ts';
import { runPreviewBuild, type PreviewBuildResult, type PreviewBuildRun } from './build-process.ts';
import { previewsFolder } from './store.ts';
import { checkPreviewRunAs, closePreviewFolder, openPreviewsFolder } from './user.ts';

/** The database a leader and its workers share (queue:): pg-boss for the requests, a table for the trees. */
export interface WorkerBuilds {
  boss: PgBoss;
  db: Queryable;
}

/** A built tree is refused over this (bytea holds 1 GB; a preview's tree is far less). */
export const MAX_TREE_BYTES = 512 * 1024 * 1024;
/** Beyond the repo's build timeout: how long a leader waits for a worker to take and hand back a build. */
export const WORKER_WAIT_S = 300;
const LOG_TAIL_BYTES = 256 * 1024;
const POLL_MS = 500;

/** What a worker is asked: the request's fields, checked again where it is taken. */
type BuildRequest = Pick<PreviewBuildRun, 'repo' | 'pr' | 'sha' | 'url' | 'fromFork' | 'job'>;

/**
 * Leader: sends the build, waits for its end (polling pg-boss, or until `stopped`), appends the
 * worker's log to the preview's, and unpacks the tree into FOLDER/src as `account`.
 */
export async function receiveWorkerBuild(
  workers: WorkerBuilds,
  run: PreviewBuildRun,
  opts: { folder: string; account?: UnixAccount; timeoutMs: number; stopped: () => boolean; log: Logger },
): Promise<PreviewBuildResult> {
  const queue = previewBuildsQueue(run.repo);
  const request: BuildRequest = {
    repo: run.repo,
    pr: run.pr,
    sha: run.sha,
    url: run.url,
    fromFork: run.fromFork,
    job: run.job,
  };
  const id = await workers.boss.send(queue, request, {
    retryLimit: 0,
    expireInSeconds: Math.ceil(opts.timeoutMs / 1000),
  });
  if (!id) return { ok: false, error: 'the preview build could not be queued for the workers' };
  const until = Date.now() + opts.timeoutMs;
  for (let taken = false; ; await new Promise((resolve) => setTimeout(resolve, POLL_MS))) {
    const job = await workers.boss.getJobById(queue, id);
    taken ||= job?.state === 'active';
    if (job?.state === 'completed') return takeTree(workers.db, run.job, opts);
    if (job?.state === 'failed' || job?.state === 'cancelled')
      return { ok: false, error: `the worker's build ended ${job.state}: ${outputMessage(job.output)}` };
    if (opts.stopped() || Date.now() > until) {
      await workers.boss.cancel(queue, id).catch(() => undefined);
      const why = opts.stopped()
        ? 'hook-server stopped leading the previews'
        : taken
          ? `the worker did not finish within ${Math.round(opts.timeoutMs / 1000)} s`
          : `no worker took the build within ${Math.round(opts.timeoutMs / 1000)} s: is a shipkit worker running with ${run.repo} in its shipkit.yml?`;
      return { ok: false, error: why };
    }
  }
}

/** The worker's row for `job`: its log appended to the preview's, its tree unpacked; the row deleted. */
async function takeTree(
  db: Queryable,
  job: string,
  opts: { folder: string; account?: UnixAccount; log: Logger },
): Promise<PreviewBuildResult> {
  const { rows } = await db.query(
    'DELETE FROM shipkit.preview_builds WHERE job = $1 RETURNING ok, error, log, worker, tree',
    [job],
  );
  const row = rows[0] as { ok: boolean; error: string | null; log: string; worker: string; tree: Buffer | null };
  if (!row) return { ok: false, error: `the worker handed back no build for job ${job}` };
  const { logs, work } = previewBuildPaths(opts.folder);
  await ensureDir(logs);
  await appendFile(path.join(logs, 'logs.txt'), `=== built on worker ${row.worker}\n${row.log}`);
  if (!row.ok || !row.tree) return { ok: false, error: `on worker ${row.worker}: ${row.error ?? 'no tree'}` };
  await rm(work, { recursive: true, force: true });
  await unpackTree(row.tree, work, opts.account);
  opts.log.info('preview built on a worker', { worker: row.worker, job, bytes: row.tree.length });
  return { ok: true };
}

/**
 * A worker's built tree into `into`, owned by `account` (root: the preview's uid): files, folders and
 * symbolic links only, no set-id bits; node-tar keeps every path inside `into`.
 */
export async function unpackTree(tree: Buffer, into: string, account?: UnixAccount): Promise<void> {
  const tar = await import('tar');
  await mkdir(into, { recursive: true, mode: 0o755 });
  const owner = account && process.getuid?.() === 0 ? { uid: account.uid, gid: account.gid } : {};
  if (owner.uid !== undefined) await chown(into, owner.uid, owner.gid!);
  let refused: string | undefined;
  const unpack = tar.x({
    cwd: into,
    strict: true,
    preserveOwner: false,
    ...owner,
    filter: (p: string, entry: unknown) => {
      const e = entry as { type?: string; mode?: number };
      if (!['File', 'OldFile', 'Directory', 'SymbolicLink'].includes(e.type ?? '')) {
        refused ??= `${JSON.stringify(p)} is a ${e.type} entry`;
        return false;
      }
      if (typeof e.mode === 'number') e.mode &= 0o777;
      return true;
    },
  });
  await new Promise<void>((resolve, reject) => {
    unpack.on('error', reject);
    unpack.on('close', resolve);
    unpack.end(tree);
  });
  if (refused) throw new ValidationError(`The worker's build holds what a built tree may not: ${refused}.`);
}

/**
 * FOLDER/src without .git, as gzip (fast level): what a worker hands back. node:zlib compresses,
 * not node-tar's `gzip` option: node-tar's Pack does not forward its compressor's errors, so one
 * would be an unhandled 'error' event that ends the worker instead of failing this build.
 *
 * A hard-linked file goes in as a file of its own (HardLinksAsFiles): a Link entry is what
 * unpackTree refuses.
 */
export async function packTree(src: string): Promise<Buffer> {
  const tar = await import('tar');
  const chunks: Buffer[] = [];
  let size = 0;
  const pack = tar.c(
    {
      cwd: src,
      portable: true,
      linkCache: new HardLinksAsFiles(),
      filter: (p: string) => !/^(\.\/)?\.git(\/|$)/.test(p),
    },
    ['.'],
  );
  await pipeline(
    Readable.from(pack as unknown as AsyncIterable<Buffer>),
    createGzip({ level: 1 }),
    async (packed: AsyncIterable<Buffer>) => {
      for await (const chunk of packed) {
        size += chunk.length;
        if (size > MAX_TREE_BYTES)
          throw new ValidationError(
            `The built tree is over ${MAX_TREE_BYTES / 2 ** 20} MB packed: too big to hand back.`,
          );
        chunks.push(chunk);
      }
    },
  );
  return Buffer.concat(chunks);
}

/** What pg-boss kept of a handler that threw. */
function outputMessage(output: unknown): string {
  const o = output as { message?: string; value?: { message?: string } } | undefined;
  return o?.message ?? o?.value?.message ?? JSON.stringify(output ?? null).slice(0, 300);
}

/**
 * Worker: takes the preview builds of the repos of `config` whose previews build on workers, one
 * at a time, and hands each back. Returns what stops it.
 */
export async function servePreviewBuilds(
  workers: WorkerBuilds,
  { config, env, log, name }: { config: ShipkitConfig; env?: NodeJS.ProcessEnv; log: Logger; name: string },
): Promise<() => Promise<void>> {
  const queues: string[] = [];
  for (const repo of config.repos.values()) {
    if (repo.previews?.buildOn !== 'workers') continue;
    const runAs = await checkPreviewRunAs(repo.previews, config.doc.locate(repo.previews.keyPath));
    if (runAs.kind !== 'self') {
      await ensureDir(previewsFolder(config.data));
      await openPreviewsFolder(
        previewsFolder(config.data),
        runAs.kind === 'user' ? runAs.account : numericAccount(runAs.uids.from),
      );
    }
    const queue = previewBuildsQueue(repo.name);
    await workers.boss.work<BuildRequest>(queue, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
      const request = checkRequest(job.data, config);
      const user =
        runAs.kind === 'own'
          ? `#${uidFor(request, runAs.uids)}`
          : runAs.kind === 'user'
            ? runAs.account.name
            : undefined;
      await buildAndHandBack(workers.db, { ...request, configFile: config.doc.file, user, env }, config, name, log);
    });
    queues.push(queue);
  }
  return async () => {
    for (const queue of queues) await workers.boss.offWork(queue).catch(() => undefined);
  };
}

/** One preview build on this worker, its row written, its folder removed (nothing is kept here). */
async function buildAndHandBack(
  db: Queryable,
  run: PreviewBuildRun,
  config: ShipkitConfig,
  worker: string,
  log: Logger,
): Promise<void> {
  const folder = previewFolder(config.data, run.repo, run.pr);
  try {
    await closePreviewFolder(folder, run.user ? await findUser(run.user) : undefined);
    log.info('preview build taken', { repo: run.repo, pr: run.pr, job: run.job });
    const result = await runPreviewBuild(run);
    const { logs, work } = previewBuildPaths(folder);
    const text = await readFileTail(path.join(logs, 'logs.txt'), LOG_TAIL_BYTES).catch(() => Buffer.alloc(0));
    let tree: Buffer | null = null;
    let error = result.error ?? null;
    if (result.ok) tree = await packTree(work).catch((e) => ((error = messageOf(e)), null));
    await db.query(
      `INSERT INTO shipkit.preview_builds (job, ok, error, log, worker, tree) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (job) DO UPDATE SET ok = EXCLUDED.ok, error = EXCLUDED.error, log = EXCLUDED.log,
         worker = EXCLUDED.worker, tree = EXCLUDED.tree`,
      [run.job, tree !== null, error, text.toString('utf8'), worker, tree],
    );
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/** The request as a worker takes it: a repo of its config with previews, a number, a commit, a URL, a job id. */
function checkRequest(data: unknown, config: ShipkitConfig): BuildRequest {
  const r = data as Partial<BuildRequest>;
  const ok =
    typeof r?.repo === 'string' &&
    config.repos.get(r.repo)?.previews !== undefined &&
    Number.isSafeInteger(r.pr) &&
    r.pr! >= 1 &&
    typeof r.sha === 'string' &&
    /^[0-9a-f]{40,64}$/.test(r.sha) &&
    typeof r.url === 'string' &&
    r.url.length <= 2048 &&
    typeof r.fromFork === 'boolean' &&
    typeof r.job === 'string' &&
    STORED_JOB_ID_PATTERN.test(r.job);
  if (!ok) throw new ValidationError(`not a preview build this worker takes: ${JSON.stringify(data).slice(0, 200)}`);
  return { repo: r.repo!, pr: r.pr!, sha: r.sha!, url: r.url!, fromFork: r.fromFork!, job: r.job! };
}

/** On a worker (as root), a preview's build runs as a uid of the range picked from its repo and number. */
function uidFor(request: BuildRequest, uids: { from: number; to: number }): number {
  const hash = createHash('sha256').update(`${request.repo}#${request.pr}`).digest().readUInt32BE(0);
  return uids.from + (hash % (uids.to - uids.from + 1));
}
