// What hook-server remembers per repo so a signed delivery cannot take the site somewhere the
// forge did not just push: the clone's remote, pinned at the first clone (a payload's clone_url
// never re-points it), and the pushes accepted per branch (a replayed older push is answered
// `superseded` and not built). Kept in DATA/pushes/FOLDER.json, written through temp + rename;
// with `queue:`, in the database every hook-server of it shares (push-guard-db.ts).
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { Coalescer } from '../core/coalesce.ts';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { repoFolderName } from '../core/names.ts';
import { redactUrls } from '../core/redact.ts';
import type { PushOrder } from './forges/payload.ts';

/** Accepted pushes remembered per branch, newest first. */
export const HISTORY = 20;

export interface AcceptedPush {
  sha: string;
  pushedAt?: number;
  at: string;
}
export interface RepoPushState {
  remote?: string;
  branches: Record<string, AcceptedPush[]>;
}

export interface Delivery {
  repo: string;
  /** The repo's `url:` from shipkit.yml; when set, the payload's clone_url is not used at all. */
  configuredUrl?: string;
  cloneUrl?: string;
  push?: { branch: string; sha: string; order: PushOrder };
}

export type Judgement =
  { verdict: 'accept' } | { verdict: 'superseded'; reason: string } | { verdict: 'refused'; reason: string };

export interface PushGuardOptions {
  dataDir: string;
  /** The repo's clone (DATA/repos/FOLDER), read for its origin and for ancestry. */
  workDir: (repo: string) => string;
  env?: NodeJS.ProcessEnv;
}

/** An accepted delivery; `changed` is false when it taught the guard nothing new (the newest push again: a redelivery). */
export type Admission =
  Exclude<Judgement, { verdict: 'accept' }> | { verdict: 'accept'; changed: boolean; undo(): Promise<void> };

export interface PushGuard {
  /** Run `fn` after the work queued before it for `repo` (deliveries of one repo, one at a time). */
  serial<T>(repo: string, fn: () => Promise<T>): Promise<T>;
  /** Judge a delivery; an accepted one is remembered at once (`undo` forgets it again, if its job could not be queued). */
  admit(delivery: Delivery, now?: Date): Promise<Admission>;
  /** Write what was accepted for `repo` to disk; calls while a write runs share the next one. */
  persist(repo: string): Promise<void>;
  /** Settles once the writes already asked for `repo` are done (an unchanged delivery waits for what it was judged against). */
  written(repo: string): Promise<void>;
}

/**
 * Deliveries of one repo are judged one at a time against what was accepted before (kept in
 * memory, loaded once from DATA/pushes); an accepted one is remembered at once, so the next
 * delivery is judged against it even while its job is being journaled, and written to disk by
 * `persist`, which lets concurrent deliveries share one write (as the journal shares fsyncs).
 */
export function createPushGuard(options: PushGuardOptions): PushGuard {
  const dir = path.join(options.dataDir, 'pushes');
  const serial = serialByKey();
  const states = new Map<string, Promise<RepoPushState>>();
  const writers = new Map<string, Coalescer<void>>();
  const stateFile = (repo: string) => pushStateFile(options.dataDir, repo);
  const load = (repo: string) => {
    let state = states.get(repo);
    if (!state) {
      state = readPushState(stateFile(repo));
      states.set(repo, state);
      state.catch(() => states.delete(repo));
    }
    return state;
  };

  return {
    serial,

    admit(delivery: Delivery, now = new Date()): Promise<Admission> {
      return serial(delivery.repo, async () => {
        const state = await load(delivery.repo);
        const judgement = await judgeDelivery(delivery, state, gitRunner(options.workDir(delivery.repo), options.env));
        if (judgement.verdict !== 'accept') return judgement;
        const { changed, undo } = remember(state, delivery, now);
        return { verdict: 'accept', changed, undo: async () => undo() };
      });
    },

    persist(repo: string): Promise<void> {
      return writer(repo).call();
    },

    written(repo: string): Promise<void> {
      return writers.get(repo)?.pending() ?? Promise.resolve();
    },
  };

  function writer(repo: string): Coalescer<void> {
    let write = writers.get(repo);
    if (!write) {
      write = new Coalescer(async () => {
        await ensureDir(dir, 0o700);
        await atomicWriteFile(stateFile(repo), `${JSON.stringify(await load(repo))}\n`, { mode: 0o600 });
      });
      writers.set(repo, write);
    }
    return write;
  }
}

/** `fn`s of one key run one after another, each after the one queued before it settled. */
export function serialByKey(): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  const chains = new Map<string, Promise<unknown>>();
  return <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const next = (chains.get(key) ?? Promise.resolve()).then(fn, fn);
    const settled = next.catch(() => undefined);
    chains.set(key, settled);
    void settled.then(() => {
      if (chains.get(key) === settled) chains.delete(key);
    });
    return next;
  };
}

/** Where a repo's state is kept without `queue:`. */
export function pushStateFile(dataDir: string, repo: string): string {
  return path.join(dataDir, 'pushes', `${repoFolderName(repo)}.json`);
}

/** A delivery held against what was accepted before for its repo (`state`), ancestry asked of the repo's clone. */
export async function judgeDelivery(delivery: Delivery, state: RepoPushState, run: GitRunner): Promise<Judgement> {
  if (!delivery.configuredUrl && delivery.cloneUrl) {
    const pinned = state.remote ?? (await originOf(run));
    if (pinned !== undefined && pinned !== delivery.cloneUrl) {
      return {
        verdict: 'refused',
        reason:
          `the payload's clone URL ${redactUrls(delivery.cloneUrl)} is not the remote pinned at the ` +
          `first clone (${redactUrls(pinned)}); set url: for ${delivery.repo} in shipkit.yml to move it`,
      };
    }
  }
  if (!delivery.push) return { verdict: 'accept' };
  const { sha } = delivery.push;
  // A commit the clone does not have (a new push) is nobody's ancestor there: asked once, and
  // only when ancestry is needed at all (not for a forge that signs its push time).
  let known: Promise<boolean> | undefined;
  const isKnown = () => (known ??= run(['cat-file', '-e', `${sha}^{commit}`]).then((r) => r.code === 0));
  return judgePush(state.branches[delivery.push.branch] ?? [], delivery.push, async (a, b) =>
    a === sha && !(await isKnown()) ? undefined : isAncestor(run, a, b),
  );
}

/** Remember an accepted delivery in `state`: its remote pinned, its push first in its branch's history. */
export function remember(
  state: RepoPushState,
  delivery: Delivery,
  now: Date,
): { changed: boolean; entry?: AcceptedPush; undo(): void } {
  const before = {
    remote: state.remote,
    branch: delivery.push ? state.branches[delivery.push.branch] : undefined,
  };
  if (!delivery.configuredUrl && delivery.cloneUrl) state.remote ??= delivery.cloneUrl;
  // The newest accepted push once more (same commit, same signed push time): nothing to
  // remember, so nothing to write; its first acceptance time stands.
  const newest = delivery.push ? before.branch?.[0] : undefined;
  const again =
    newest !== undefined && newest.sha === delivery.push!.sha && newest.pushedAt === delivery.push!.order.pushedAt;
  let entry: AcceptedPush | undefined;
  if (delivery.push && !again) {
    const { branch, sha, order } = delivery.push;
    entry = {
      sha,
      at: now.toISOString(),
      ...(order.pushedAt !== undefined ? { pushedAt: order.pushedAt } : {}),
    };
    state.branches[branch] = [entry, ...(state.branches[branch] ?? []).filter((p) => p.sha !== sha)].slice(0, HISTORY);
  }
  return {
    changed: state.remote !== before.remote || !again,
    entry,
    undo() {
      state.remote = before.remote;
      if (delivery.push) state.branches[delivery.push.branch] = before.branch ?? [];
    },
  };
}

/**
 * Is this push older than the newest one accepted for its branch? By the push time the forge
 * signed (GitHub's `repository.pushed_at`) when both have one; else by ancestry in the clone —
 * unless the push was forced (GitHub's `forced`, or a `before` that is not an ancestor of the
 * new commit: the branch was rewound on purpose) or starts where the newest one ended.
 */
export async function judgePush(
  history: AcceptedPush[],
  push: { sha: string; order: PushOrder },
  isAncestorOf: (a: string, b: string) => Promise<boolean | undefined>,
): Promise<Judgement> {
  const newest = history[0];
  if (!newest || push.sha === newest.sha) return { verdict: 'accept' };
  const { pushedAt, forced, before } = push.order;
  if (pushedAt !== undefined && newest.pushedAt !== undefined) {
    return pushedAt < newest.pushedAt
      ? {
          verdict: 'superseded',
          reason: `pushed at ${iso(pushedAt)}, before the push of ${newest.sha.slice(0, 12)} (${iso(newest.pushedAt)})`,
        }
      : { verdict: 'accept' };
  }
  if (forced === true || before === newest.sha) return { verdict: 'accept' };
  let older: AcceptedPush | undefined = history.slice(1).find((p) => p.sha === push.sha);
  for (const known of history) {
    if (older) break;
    if (await isAncestorOf(push.sha, known.sha)) older = known;
  }
  if (!older) return { verdict: 'accept' };
  if (before !== undefined && (await isAncestorOf(before, push.sha)) === false) return { verdict: 'accept' };
  return {
    verdict: 'superseded',
    reason: `${push.sha.slice(0, 12)} is not newer than ${older.sha.slice(0, 12)}, accepted at ${older.at}, and the push was not forced`,
  };
}

async function isAncestor(git: GitRunner, a: string, b: string): Promise<boolean | undefined> {
  if (a === b) return false;
  const { code } = await git(['merge-base', '--is-ancestor', a, b]);
  return code === 0 ? true : code === 1 ? false : undefined;
}

async function originOf(git: GitRunner): Promise<string | undefined> {
  const { code, stdout } = await git(['config', '--local', '--get', 'remote.origin.url']);
  return code === 0 && stdout.trim() ? stdout.trim() : undefined;
}

export type GitRunner = (args: string[]) => Promise<{ code: number | null; stdout: string }>;

/** Read-only git queries in the clone at `work` (see gitIn). */
export function gitRunner(work: string, env: NodeJS.ProcessEnv = process.env): GitRunner {
  return (args) => gitIn(work, args, env);
}

// A read-only git query in a clone hook-server may not own (a build user's, whose builds could
// edit its .git/config): no hook variables, no user or system config, nothing the repo's config
// could make git run (fsmonitor, hooks, pager), ownership vouched for on the command line.
async function gitIn(
  work: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string }> {
  const gitDir = path.join(work, '.git');
  try {
    await access(gitDir);
  } catch {
    return { code: null, stdout: '' };
  }
  const result = await $({
    quiet: true,
    nothrow: true,
    timeout: 10_000,
    env: {
      PATH: env.PATH ?? '/usr/bin:/bin',
      HOME: env.HOME ?? '/',
      LANG: 'C',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    },
  })`git --no-pager -c safe.directory=* -c core.fsmonitor=false -c core.hooksPath=/dev/null --git-dir ${gitDir} ${args}`;
  return { code: result.exitCode, stdout: result.stdout };
}

/** A repo's state as kept in DATA/pushes; empty when there is no file. */
export async function readPushState(file: string): Promise<RepoPushState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { branches: {} };
    throw error;
  }
  return pushStateOf(JSON.parse(text));
}

/** A state read back (from a file or the database), its fields as the guard wants them. */
export function pushStateOf(parsed: unknown): RepoPushState {
  const value = (parsed ?? {}) as Partial<RepoPushState>;
  return {
    ...(typeof value.remote === 'string' ? { remote: value.remote } : {}),
    branches: value.branches && typeof value.branches === 'object' ? value.branches : {},
  };
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
