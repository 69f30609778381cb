// DEST's publish lock on user@host:path and s3:// (docs/release.md, "Two writers"): over ssh an
// atomic mkdir of PATH/.shipkit-publish.lock with an owner file; on S3 one claim object per writer
// under PREFIX/.shipkit-publish.lock/, held by the writer whose listing shows only its own claim.
// The holder renews it every minute; one not renewed for 10 minutes is stale and taken over.
import { setTimeout as sleep } from 'node:timers/promises';
import { $ } from '../../core/shell.ts';
import { RemoteError, WorkError } from '../../core/errors.ts';
import { requirePrograms } from '../../core/programs.ts';
import { sshArgs } from '../../core/ssh.ts';
import { describeS3Error, makeS3Client } from '../../stages/upload/s3.ts';
import { parseTarget } from '../../stages/upload/targets.ts';
import type { RsyncTarget, S3Target } from '../../stages/upload/types.ts';
import { shownEscaped } from '../../core/escape.ts';

export const LOCK_NAME = '.shipkit-publish.lock';
/** A lock its holder has not renewed for this long is stale. */
export const STALE_LOCK_MS = 10 * 60_000;
const RENEW_MS = 60_000;

/** Who holds a lock: written into it, shown to the writer it stops. */
export interface LockOwner {
  by: string;
  at: string;
  /** pid@host */
  pid: string;
  /** Names this acquisition; only the holder of the token renews or releases the lock. */
  token: string;
}

export interface DestLock {
  release(): Promise<void>;
}

interface Primitives {
  /** One try: true when taken; else the holder as it reads (undefined when unreadable). */
  take(): Promise<true | { holder?: Partial<LockOwner> }>;
  renew(): Promise<void>;
  release(): Promise<void>;
}

export interface RemoteLockOptions {
  staleMs?: number;
  /** How often the holder renews it (default every minute). */
  renewMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Takes the publish lock of the remote DEST `where` (user@host:path, rsync://… or s3://…) for
 * `owner`, or throws WorkError naming its holder; the lock is renewed until released.
 */
export async function lockRemoteDestination(
  where: string,
  owner: LockOwner,
  { staleMs = STALE_LOCK_MS, renewMs = RENEW_MS, env = process.env }: RemoteLockOptions = {},
): Promise<DestLock> {
  const target = parseTarget(where);
  if (target.kind === 'git')
    throw new RemoteError(`A git+ DEST cannot be locked; publish to a folder, s3:// or user@host:path.`);
  const lock = target.kind === 's3' ? s3Lock(target, owner, staleMs, env) : sshLock(target, owner, staleMs, env);
  const taken = await lock.take();
  if (taken !== true) throw lockHeldError(where, taken.holder);
  // One renewal at a time, the next renewMs after the last one ended: on a slow server, renewals
  // that overlap pile up and the lock can go stale while held. A renewal still on its way when
  // the lock is released would put the lock back: release waits for it.
  let renewing: Promise<void> = Promise.resolve();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      renewing = lock
        .renew()
        .catch(() => undefined)
        .then(() => void (stopped || schedule()));
    }, renewMs);
    timer.unref();
  };
  schedule();
  return {
    async release() {
      stopped = true;
      clearTimeout(timer);
      await renewing;
      await lock.release();
    },
  };
}

/** The message a second writer gets. Text from DEST is shown escaped. */
export function lockHeldError(where: string, holder: Partial<LockOwner> | undefined): WorkError {
  const text = (value: unknown) => shownEscaped(typeof value === 'string' && value ? value.slice(0, 200) : 'unknown');
  return new WorkError(
    `Another release publish, rollout or rollback holds the lock of ${where} since ${text(holder?.at)} ` +
      `(by ${text(holder?.by)}, process ${text(holder?.pid)}); try again when it is done. Nothing was written. ` +
      `(A lock its holder stopped renewing is taken over after ${STALE_LOCK_MS / 60_000} minutes.)`,
  );
}

function parseOwner(text: string | undefined): Partial<LockOwner> | undefined {
  try {
    const owner = JSON.parse(text ?? '') as unknown;
    return owner && typeof owner === 'object' ? (owner as Partial<LockOwner>) : undefined;
  } catch {
    return undefined;
  }
}

/** One argument for the remote user's shell (ssh joins its arguments into one command line). */
export function remoteShellWord(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The remote path as a path from the login folder for sh: `~/x` and `~` mean the home folder. */
function remotePath(target: RsyncTarget): string {
  const clean = target.path.replace(/(.)\/+$/, '$1');
  if (clean === '~') return '.';
  return clean.startsWith('~/') ? clean.slice(2) : clean;
}

// Runs on the remote host: `take` makes the lock folder with mkdir (atomic: one writer wins) and
// prints "taken", else "held AGE" and the owner; a lock older than the limit is removed and taken
// under a guard folder, so two takers never remove each other's fresh lock. `renew` and
// `release` act only when the owner file holds the token.
const SSH_SCRIPT = String.raw`
mode=$1 dest=$2 owner=$3 stale=$4 token=$5
lock="$dest/.shipkit-publish.lock"
mtime() { stat -c %Y -- "$1" 2>/dev/null || stat -f %m -- "$1" 2>/dev/null; }
age() { m=$(mtime "$lock/owner") || m=$(mtime "$lock") || return 1; echo $(( $(date +%s) - m )); }
claim() { mkdir -- "$lock" 2>/dev/null || return 1; printf '%s\n' "$owner" > "$lock/owner" || { rm -rf -- "$lock"; return 2; }; }
case $mode in
renew) grep -qF -- "$token" "$lock/owner" 2>/dev/null && touch -- "$lock/owner"; exit 0 ;;
release) grep -qF -- "$token" "$lock/owner" 2>/dev/null && rm -rf -- "$lock"; exit 0 ;;
esac
[ -d "$dest" ] || mkdir -- "$dest" 2>/dev/null
for try in 1 2 3; do
  took=
  if claim; then echo taken; exit 0; fi
  a=$(age) || continue
  if [ "$a" -gt "$stale" ]; then
    g="$lock.takeover"
    ga=$(( $(date +%s) - $(mtime "$g" || date +%s) ))
    [ "$ga" -gt 60 ] && rmdir -- "$g" 2>/dev/null
    if mkdir -- "$g" 2>/dev/null; then
      a=$(age) && [ "$a" -gt "$stale" ] && rm -rf -- "$lock"
      claim && took=1
      rmdir -- "$g"
      [ -n "$took" ] && { echo taken; exit 0; }
      continue
    fi
  fi
  # A lock just made gets its owner file a moment later: wait for it rather than name no one.
  n=0
  while [ ! -s "$lock/owner" ] && [ -d "$lock" ] && [ "$n" -lt 20 ]; do sleep 0.1 2>/dev/null || sleep 1; n=$((n + 1)); done
  [ -d "$lock" ] || continue
  echo "held $a"; cat -- "$lock/owner" 2>/dev/null; exit 0
done
echo "cannot $(mkdir -- "$lock" 2>&1)"; exit 3
`;

function sshLock(target: RsyncTarget, owner: LockOwner, staleMs: number, env: NodeJS.ProcessEnv): Primitives {
  const where = `${target.user ? `${target.user}@` : ''}${target.host}:${target.path}`;
  const run = async (mode: 'take' | 'renew' | 'release') => {
    requirePrograms(['ssh'], env.PATH);
    const words = ['sh', '-c', SSH_SCRIPT, 'shipkit-lock', mode, remotePath(target), JSON.stringify(owner)];
    words.push(String(Math.floor(staleMs / 1000)), owner.token);
    const host = `${target.user ? `${target.user}@` : ''}${target.host.replace(/^\[(.*)\]$/, '$1')}`;
    const ssh = sshArgs({ port: target.port });
    const command = words.map(remoteShellWord).join(' ');
    const r = await $({ env, quiet: true, nothrow: true })`${ssh} -- ${host} ${command}`;
    if (r.exitCode !== 0)
      throw new RemoteError(
        `Locking ${where} over ssh failed (exit ${r.exitCode}): ` +
          `${shownEscaped(`${r.stdout}${r.stderr}`.trim().split('\n').slice(-1)[0] ?? '')}. Nothing was written.`,
      );
    return r.stdout;
  };
  return {
    async take() {
      // The answer is the last "taken" or "held AGE" line (a login script may print before it).
      const lines = (await run('take')).split('\n');
      const at = lines.findLastIndex((l) => /^(taken|held \d*)$/.test(l));
      if (lines[at] === 'taken') return true;
      return { holder: at === -1 ? undefined : parseOwner(lines[at + 1]) };
    },
    renew: async () => void (await run('renew')),
    release: async () => void (await run('release')),
  };
}

/** One writer's claim: NAME, and NAME.held once it holds the lock (rewritten to renew it). */
interface Claim {
  name: string;
  held: boolean;
  /** When the newer of its objects was written, by the server's clock. */
  modified: number;
}

const HELD = '.held';

function s3Lock(target: S3Target, owner: LockOwner, staleMs: number, env: NodeJS.ProcessEnv): Primitives {
  const folder = `${target.prefix}${LOCK_NAME}/`;
  const mine = `${String(Date.now()).padStart(15, '0')}-${owner.token}`;
  const use = <T>(fn: (s: S3Session) => Promise<T>) => withS3Session(target, folder, env, fn);
  const body = () => JSON.stringify({ ...owner, renewed: new Date().toISOString() });
  return {
    take: () =>
      use(async (s) => {
        // Someone holds it already: say so without writing anything.
        const before = await liveClaims(s, staleMs, mine);
        if (before.length) return { holder: await s.read(before[0].name) };
        await s.put(mine, body());
        const deadline = Date.now() + 5_000;
        for (;;) {
          const others = await liveClaims(s, staleMs, mine);
          if (!others.length) {
            await s.put(mine + HELD, body());
            return true;
          }
          // The older claim waits for the younger to withdraw, unless the younger already holds it.
          const rival = others.find((c) => c.name < mine || c.held);
          if (rival || Date.now() > deadline) {
            await s.remove(mine);
            return { holder: await s.read((rival ?? others[0]).name) };
          }
          await sleep(100);
        }
      }),
    renew: () => use((s) => s.put(mine + HELD, body())),
    release: () =>
      use(async (s) => {
        await s.remove(mine + HELD);
        await s.remove(mine);
      }),
  };
}

type S3Session = Awaited<ReturnType<typeof openS3Session>>;

/** The few S3 calls the lock makes, on one client. */
async function openS3Session(target: S3Target, folder: string, env: NodeJS.ProcessEnv) {
  const { s3, client, target: t } = await makeS3Client(target, env);
  const Bucket = t.bucket;
  return {
    client,
    /** The claims under the lock folder, oldest first. */
    async list(): Promise<Claim[]> {
      const claims = new Map<string, Claim>();
      let token: string | undefined;
      do {
        const page = await client.send(
          new s3.ListObjectsV2Command({ Bucket, Prefix: folder, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          const key = o.Key?.slice(folder.length) ?? '';
          const name = key.endsWith(HELD) ? key.slice(0, -HELD.length) : key;
          const claim = claims.get(name) ?? { name, held: false, modified: 0 };
          claim.held ||= key.endsWith(HELD);
          claim.modified = Math.max(claim.modified, o.LastModified?.getTime() ?? 0);
          if (name) claims.set(name, claim);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return [...claims.values()].sort((x, y) => (x.name < y.name ? -1 : 1));
    },
    /** The owner a claim names, or undefined when it cannot be read (gone, or being rewritten). */
    async read(name: string): Promise<(Partial<LockOwner> & { renewed?: string }) | undefined> {
      try {
        const answer = await client.send(new s3.GetObjectCommand({ Bucket, Key: folder + name }));
        return parseOwner(await answer.Body?.transformToString());
      } catch {
        return undefined;
      }
    },
    put: async (name: string, text: string) =>
      void (await client.send(
        new s3.PutObjectCommand({ Bucket, Key: folder + name, Body: text, ContentType: 'application/json' }),
      )),
    remove: async (name: string) =>
      void (await client.send(new s3.DeleteObjectCommand({ Bucket, Key: folder + name }))),
  };
}

/** Runs `fn` on a session of its own; S3 failures become RemoteError with the server's word. */
async function withS3Session<T>(
  target: S3Target,
  folder: string,
  env: NodeJS.ProcessEnv,
  fn: (s: S3Session) => Promise<T>,
): Promise<T> {
  const s = await openS3Session(target, folder, env);
  try {
    return await fn(s);
  } catch (error) {
    throw error instanceof WorkError || error instanceof RemoteError ? error : describeS3Error(error, target);
  } finally {
    s.client.destroy();
  }
}

/**
 * The other writers' claims, oldest first. One whose holder has not renewed it within `staleMs`
 * (its `renewed` time, or the server's when it cannot be read) is deleted.
 */
async function liveClaims(s: S3Session, staleMs: number, mine: string): Promise<Claim[]> {
  const live: Claim[] = [];
  for (const claim of await s.list()) {
    if (claim.name === mine) continue;
    const owner = await s.read(claim.held ? claim.name + HELD : claim.name);
    const renewed = Date.parse(owner?.renewed ?? '');
    if (Date.now() - (Number.isFinite(renewed) ? renewed : claim.modified) <= staleMs) {
      live.push(claim);
      continue;
    }
    await s.remove(claim.name + HELD);
    await s.remove(claim.name);
  }
  return live;
}
