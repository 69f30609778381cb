// Keeping an instance's processes together (docs/launchfit.md): each instance runs under a small
// Perl wrapper that is a child subreaper, so processes the app leaves behind (setsid, double fork)
// are ended with it; without perl the app runs directly and launchfit says so once.
// The whole story: docs/internals.md.
import { EventEmitter } from 'node:events';
import { accessSync, constants, readdirSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { childrenOf, keepsChildLists, readProcFile } from '../../core/procfs.ts';
import { bootId, isGroupAlive, signalGroup, waitForGroupExit, type GroupEnd } from '../../core/process-group.ts';
import { isAppOf } from '../deploy-folder/app-env.ts';

/**
 * The wrapper. ARGV: GRACE_MS LOG_FILE AS COMMAND... AS is empty, or UID:GID: the app (not the
 * wrapper) runs as that user, so it cannot signal the wrapper that supervises it (app.user).
 * It reports the app's pid on stderr as
 * `launchfit-instance: app pid N`; the app's stdout and stderr come out on its stdout (into
 * LOG_FILE once nobody reads that any more, as after a kill -9 of launchfit).
 */
export const INSTANCE_WRAPPER = String.raw`
use strict; use warnings; use POSIX (); use Config;
my ($grace_ms, $log, $as, @cmd) = @ARGV;
# prctl's number by the architecture perl was built for (the kernel's syscall tables).
my $a = $Config{archname};
my $nr = $a =~ /^x86_64.*x32/ ? 0x40000000 + 157 : $a =~ /^x86_64/ ? 157
  : $a =~ /^(aarch64|riscv64|loongarch64)/ ? 167 : $a =~ /^(i\d86|arm|s390)/ ? 172
  : $a =~ /^(powerpc|ppc)/ ? 171 : $a =~ /^mips64/ ? 5153 : $a =~ /^mips/ ? 4192 : undef;
if (!defined $nr || syscall($nr, 36, 1, 0, 0, 0) != 0) {   # 36: PR_SET_CHILD_SUBREAPER
  my $why = defined $nr ? "$!" : "unknown architecture";
  print STDERR "launchfit: cannot become a child subreaper on $a ($why); processes that leave the app's session will outlive it\n";
} else {
  my $name = "launchfit-inst"; syscall($nr, 15, $name, 0, 0, 0);   # PR_SET_NAME, for ps and top ($0 would overwrite the environment launchfit reads)
}
sub now { open(my $f, '<', '/proc/uptime') or return time; my $t = <$f>; return (split ' ', $t)[0] }
my @pending;
my @forward = qw(TERM INT QUIT HUP USR1 USR2 WINCH);
$SIG{$_} = sub { push @pending, $_[0] } for @forward;
$SIG{CHLD} = sub {};   # wakes select when the app exits
$SIG{PIPE} = 'IGNORE';
pipe(my $out_r, my $out_w) or die "launchfit: pipe: $!\n";
# Signals held back over the fork: the child must not take one with our handler (it would be
# queued there and lost at exec), and we pass on only to a group that exists.
my %signo; @signo{split ' ', $Config{sig_name}} = split ' ', $Config{sig_num};
my ($held, $mask) = (POSIX::SigSet->new(@signo{@forward}), POSIX::SigSet->new);
POSIX::sigprocmask(POSIX::SIG_BLOCK(), $held, $mask);
my $app = fork;
die "launchfit: fork: $!\n" unless defined $app;
if ($app == 0) {
  $SIG{$_} = 'DEFAULT' for @forward, 'CHLD', 'PIPE';
  POSIX::sigprocmask(POSIX::SIG_SETMASK(), $mask);
  POSIX::setpgid(0, 0);
  POSIX::dup2(fileno($out_w), 1); POSIX::dup2(fileno($out_w), 2);
  if (length $as) {   # drop to app.user: groups first, then the gid, then every uid
    my ($uid, $gid) = split /:/, $as;
    $) = "$gid $gid"; $( = $gid; POSIX::setuid($uid);
    if ($< != $uid || $> != $uid || $( + 0 != $gid || $) + 0 != $gid) {
      print STDERR "launchfit: cannot run the app as uid $uid gid $gid: $!\n"; POSIX::_exit(126);
    }
  }
  exec { $cmd[0] } @cmd or print STDERR "launchfit: cannot run $cmd[0]: $!\n";
  POSIX::_exit(127);
}
# The app's group made here too, not only in the child, before a signal held back is passed on.
POSIX::setpgid($app, $app);
POSIX::sigprocmask(POSIX::SIG_SETMASK(), $mask);
close $out_w;
print STDERR "launchfit-instance: app pid $app\n";
# Output: to our stdout while launchfit reads it, then appended to the log file.
my $to_parent = 1;
sub emit {
  my ($buf) = @_;
  while ($to_parent && length $buf) {
    my $n = syswrite(STDOUT, $buf);
    if (!defined $n) { $to_parent = 0; last }
    substr($buf, 0, $n) = '';
  }
  return if !length $buf || !open(my $f, '>>', $log);
  print $f $buf; close $f;
}
# Wait up to $wait s for output and pass it on; false when none came.
sub relay {
  my ($wait) = @_;
  if (!$out_r) { select(undef, undef, undef, $wait); return 0 }
  my $rin = ''; vec($rin, fileno($out_r), 1) = 1;
  return 0 unless select(my $rout = $rin, undef, undef, $wait) > 0;
  my $n = sysread($out_r, my $buf, 65536);
  if ($n) { emit($buf) } elsif (defined $n) { close $out_r; undef $out_r }
  return 1;
}
# Every process below us: children, theirs, and the orphans re-parented to us. From the children
# lists of their threads (/proc/P/task/T/children) where the kernel keeps them: a scan of every
# process on the machine, the way without them, cost ~8 ms of CPU at each app's exit, beside the
# instance that took over.
my $listed = -r "/proc/$$/task/$$/children";
sub running { open(my $f, '<', "/proc/$_[0]/stat") or return 0; my $s = <$f>; return defined $s && $s =~ /.*\)\s+([^ZX\s])/s }
sub kids_of {
  my ($p) = @_; my @k;
  opendir(my $d, "/proc/$p/task") or return ();
  for my $t (grep { /^\d+$/ } readdir $d) {
    open(my $f, '<', "/proc/$p/task/$t/children") or next;
    my $l = <$f>; push @k, grep { running($_) } split ' ', $l if defined $l;
  }
  return @k;
}
sub descendants {
  if ($listed) {
    my @all; my @queue = ($$);
    while (@queue) { for my $k (kids_of(shift @queue)) { push @all, $k; push @queue, $k } }
    return @all;
  }
  my %kids;
  opendir(my $d, '/proc') or return ();
  for my $p (grep { /^\d+$/ } readdir $d) {
    open(my $f, '<', "/proc/$p/stat") or next;
    my $s = <$f>;
    next unless defined $s && $s =~ /.*\)\s+(\S)\s+(\d+)/s;
    push @{$kids{$2}}, $p unless $1 eq 'Z' || $1 eq 'X';
  }
  my @all; my @queue = ($$);
  while (@queue) { for my $k (@{$kids{shift @queue} || []}) { push @all, $k; push @queue, $k } }
  return @all;
}
my ($status, $stop_at);
sub reap { while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) { $status = $? if $p == $app } }
# Until the app exits: pass signals on to its group; a stop signal starts the grace time.
while (1) {
  while (my $sig = shift @pending) {
    kill $sig, -$app;
    $stop_at //= now() + $grace_ms / 1000 if $sig =~ /^(TERM|INT|QUIT)$/;
  }
  reap();
  last if defined $status;
  if (defined $stop_at && now() >= $stop_at) { kill 'KILL', -$app; kill 'KILL', descendants() }
  relay(0.1);
}
# Then whatever it left: SIGTERM once each, SIGKILL after the grace time.
my $until = now() + $grace_ms / 1000;
$until = $stop_at if defined $stop_at && $stop_at < $until;
my %told;
while (1) {
  reap();
  my @left = descendants();
  last unless @left;
  my $late = now() >= $until;
  last if now() >= $until + 5;   # not ours to kill (another user's): give up
  for my $p (@left) { kill($late ? 'KILL' : 'TERM', $p) if $late || !$told{$p}++ }
  relay(0.05);
}
1 while $out_r && relay(0.05);
exit($status >> 8) unless $status & 127;
my $sig = $status & 127;
my $name = (split ' ', $Config{sig_name})[$sig];
# A core-dumping signal is reported as 128+N (no second core file from us); others are re-raised.
exit(128 + $sig) if $name =~ /^(QUIT|ILL|TRAP|ABRT|BUS|FPE|SEGV|SYS|XCPU|XFSZ)$/;
$SIG{$name} = 'DEFAULT';
kill $sig, $$;
sleep 1;
exit(128 + $sig);
`;

/** The line on the wrapper's stderr that names the app's pid. */
export const APP_PID_LINE = /^launchfit-instance: app pid (\d+)$/m;

let perlPath: string | null | undefined;

/** perl on PATH (found once), or null. */
export function findPerl(pathVar = process.env.PATH ?? '/usr/bin:/bin'): string | null {
  if (perlPath !== undefined) return perlPath;
  perlPath = null;
  for (const dir of pathVar.split(':').filter(Boolean)) {
    const file = path.join(dir, 'perl');
    try {
      accessSync(file, constants.X_OK);
      perlPath = file;
      break;
    } catch {
      /* not here */
    }
  }
  return perlPath;
}

export interface InstanceOptions {
  graceMs: number;
  log: string;
  /** app.user's ids: the wrapper drops to them in the app's process only. */
  as?: { uid: number; gid: number };
  perl?: string | null;
}

/** The argv that runs `command` as an instance (under the wrapper), or `command` itself without perl. */
export function instanceCommand(command: string[], { graceMs, log, as, perl = findPerl() }: InstanceOptions): string[] {
  if (!perl) return command;
  const ids = as ? `${as.uid}:${as.gid}` : '';
  return [perl, '-e', INSTANCE_WRAPPER, '--', String(Math.max(0, Math.round(graceMs))), log, ids, ...command];
}

/** The live processes by their parent's pid, from /proc (zombies left out). */
function childrenByParent(procDir: string): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync(procDir).filter((name) => /^\d+$/.test(name));
  } catch {
    return kids;
  }
  for (const entry of entries) {
    try {
      const stat = readProcFile(`${procDir}/${entry}/stat`);
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' || state === 'X') continue;
      const list = kids.get(Number(ppid)) ?? [];
      list.push(Number(entry));
      kids.set(Number(ppid), list);
    } catch {
      /* gone meanwhile */
    }
  }
  return kids;
}

/** Every process below `pid` in `kids`, children first. */
function below(pid: number, kids: Map<number, number[]>): number[] {
  const all: number[] = [];
  const queue = [pid];
  while (queue.length)
    for (const kid of kids.get(queue.shift()!) ?? []) {
      all.push(kid);
      queue.push(kid);
    }
  return all;
}

/**
 * Every live process below `pid`, children first: from the children lists of their threads where
 * the kernel keeps them, else by the parent pids of every process in /proc.
 */
export function descendantsOf(pid: number, procDir = '/proc'): number[] {
  if (!keepsChildLists(procDir)) return below(pid, childrenByParent(procDir));
  const all: number[] = [];
  const queue = [pid];
  while (queue.length)
    for (const kid of childrenOf(queue.shift()!, procDir)) {
      all.push(kid);
      queue.push(kid);
    }
  return all;
}

/**
 * The processes that carry the deploy folder `dir`'s mark but are not `roots` or below one of
 * them: an app that escaped its instance (it killed the wrapper, and was re-parented to init).
 * launchfit passes its own pid and the instances it adopted: everything it supervises is below those.
 */
export function strayProcesses(dir: string, roots: number[], procDir = '/proc'): number[] {
  const kids = childrenByParent(procDir);
  const kept = new Set([...roots.flatMap((root) => [root, ...below(root, kids)]), ...ancestorsOf(process.pid, kids)]);
  const strays: number[] = [];
  for (const pid of [...kids.values()].flat()) {
    if (kept.has(pid)) continue;
    try {
      if (isAppOf(readProcFile(`${procDir}/${pid}/environ`).split('\0'), dir)) strays.push(pid);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return strays;
}

/** The processes above `pid` (never strays: launchfit started from a marked shell ends no one). */
function ancestorsOf(pid: number, kids: Map<number, number[]>): number[] {
  const parent = new Map<number, number>();
  for (const [ppid, list] of kids) for (const kid of list) parent.set(kid, ppid);
  const all: number[] = [];
  for (let p = parent.get(pid); p !== undefined && p > 0 && !all.includes(p); p = parent.get(p)) all.push(p);
  return all;
}

/** End the strays of `dir` (strayProcesses): SIGTERM, then SIGKILL to those left after `graceMs`. Returns their pids. */
export async function endStrays(dir: string, roots: number[], graceMs: number): Promise<number[]> {
  const strays = strayProcesses(dir, roots);
  const signal = (pids: number[], name: NodeJS.Signals) => {
    for (const pid of pids)
      try {
        process.kill(pid, name);
      } catch {
        /* gone */
      }
  };
  signal(strays, 'SIGTERM');
  const until = Date.now() + graceMs;
  let left = strays;
  while (left.length && Date.now() < until) {
    await sleep(50);
    left = left.filter((pid) => strayProcesses(dir, roots).includes(pid));
  }
  signal(left, 'SIGKILL');
  return strays;
}

/** SIGKILL everything below the instance `pid`, then its group (the wrapper): a stop that ran out of time. */
export function killInstance(pid: number): void {
  for (const p of descendantsOf(pid)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone, or not ours */
    }
  }
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/**
 * End an instance left by a killed launchfit: SIGTERM to the wrapper (it passes it on to the app
 * and ends the rest), then, if it is still there after the grace time, SIGKILL below and to it.
 */
export async function endInstance(pid: number, graceMs: number): Promise<GroupEnd> {
  if (!isGroupAlive(pid)) return 'not-running';
  signalGroup(pid, 'SIGTERM');
  // The wrapper's own grace runs from the same signal; a little more for its last round.
  if (await waitForGroupExit(pid, graceMs + 1000)) return 'exited';
  killInstance(pid);
  return (await waitForGroupExit(pid, 5000)) ? 'killed' : 'survived';
}

// Adopting an instance (docs/launchfit.md): a launchfit killed with kill -9 leaves its instances
// running; the next one, instead of stopping the one that serves the current release, takes it
// over. It is recognised by its record (the pid file: the wrapper's pid, its start time and the
// boot id, and the app's pid) and the deploy folder's mark in its environment, so a reused pid
// is never taken for it.

/** An instance a killed launchfit left running, as its pid file and /proc describe it. */
export interface LeftInstance {
  /** The wrapper (the instance's process and group). */
  pgid: number;
  /** The app's own pid. */
  pid: number;
  start: string;
  startedAt: string;
  /** The release folder's name it runs in (its working folder). */
  release?: string;
}

/** Whether `pid` still is the process that started at `start` (not a zombie, not a reused pid). */
export function isSameProcess(pid: number, start: string, procDir = '/proc'): boolean {
  try {
    const stat = readProcFile(`${procDir}/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && fields[0] !== 'X' && fields[19] === start;
  } catch {
    return false;
  }
}

/** The live instance `pidFile` records for the deploy folder `dir`, under the wrapper; undefined otherwise. */
export async function readLeftInstance(pidFile: string, dir: string): Promise<LeftInstance | undefined> {
  let record: { pid?: number; pgid?: number; start?: string; boot?: string; startedAt?: string };
  try {
    record = JSON.parse(await readFile(pidFile, 'utf8'));
  } catch {
    return undefined;
  }
  const { pid, pgid, start, boot, startedAt } = record;
  if (!pid || !pgid || pid === pgid || !start || !startedAt || boot !== bootId() || !isSameProcess(pgid, start))
    return undefined;
  const environ = await readFile(`/proc/${pgid}/environ`, 'latin1').catch(() => '');
  if (!isAppOf(environ.split('\0'), dir)) return undefined;
  const cwd = await readlink(`/proc/${pgid}/cwd`).catch(() => '');
  return { pgid, pid, start, startedAt, release: path.basename(cwd) || undefined };
}

/** Stands for an adopted instance where the supervisor expects a ChildProcess: its pid, and `exit` (status unknown) once it is gone. */
export class AdoptedInstance extends EventEmitter {
  readonly pid: number;
  private readonly timer: NodeJS.Timeout;

  constructor(instance: LeftInstance, pollMs = 200) {
    super();
    this.pid = instance.pgid;
    this.timer = setInterval(() => {
      if (isSameProcess(instance.pgid, instance.start)) return;
      clearInterval(this.timer);
      this.emit('exit', null, null);
    }, pollMs);
  }
}
