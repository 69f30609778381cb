// The HTTP health check (`app.health`): a GET that must answer 2xx within `timeout`. With
// app.listen, old and new app share the public sockets, so the probe goes over the instance's
// own private Unix socket (passed to it as the fd named `health`), and its answer can only come
// from that instance. A new instance is healthy once it answered and kept answering for
// healthy_after; while the app runs, `failures` failed probes in a row are a crash.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProbeTarget {
  url: string;
  /** Send the request over this Unix socket instead of connecting to the URL's host. */
  socketPath?: string;
  timeoutMs: number;
  /**
   * A keep-alive agent (createProber): the probe goes over the connection the last one used, when
   * the app kept it open. Without one, each probe opens a connection and closes it.
   */
  agent?: http.Agent;
}

export interface ProbeAnswer {
  at: string;
  ok: boolean;
  status?: number;
  error?: string;
  ms: number;
  /** The first bytes of the body of a non-2xx answer. */
  body?: string;
}

/** One GET; never throws. */
export async function probeHealth(target: ProbeTarget): Promise<ProbeAnswer> {
  const t0 = Date.now();
  const at = new Date().toISOString();
  const first = await probeOnce(target, target.timeoutMs);
  // A kept-alive connection the app closed while idle (its keep-alive timeout, a restart) fails
  // before any answer: that is not the app's answer, so the probe is sent again on a new connection.
  const answer = first.closedWhileIdle
    ? await probeOnce(target, Math.max(1, target.timeoutMs - (Date.now() - t0)))
    : first;
  delete answer.closedWhileIdle;
  return { at, ms: Date.now() - t0, ...answer };
}

type Attempt = Omit<ProbeAnswer, 'at' | 'ms'> & { closedWhileIdle?: boolean };

function probeOnce(target: ProbeTarget, timeoutMs: number): Promise<Attempt> {
  const url = new URL(target.url);
  return new Promise((resolve) => {
    let settled = false;
    let answered = false;
    const finish = (answer: Attempt, keep = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!keep) req.destroy();
      resolve(answer);
    };
    const req = http.request(
      {
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers: { host: url.host, 'user-agent': 'launchfit-health', ...(target.agent ? {} : { connection: 'close' }) },
        ...(target.socketPath
          ? { socketPath: target.socketPath }
          : { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || 80 }),
        agent: target.agent ?? false,
      },
      (res) => {
        answered = true;
        const status = res.statusCode ?? 0;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 200) body += d;
        });
        // A whole answer leaves the connection to the agent, which keeps it for the next probe.
        res.on('end', () =>
          finish(
            status >= 200 && status < 300
              ? { ok: true, status }
              : { ok: false, status, body: body.slice(0, 200).trim() },
            Boolean(target.agent),
          ),
        );
        res.on('error', (error) => finish({ ok: false, status, error: error.message }));
      },
    );
    const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) =>
      finish({ ok: false, error: error.code ?? error.message, closedWhileIdle: req.reusedSocket && !answered }),
    );
    req.end();
  });
}

/** Probes of one instance over one kept-alive connection (Unix socket or TCP). */
export interface Prober {
  probe(timeoutMs: number): Promise<ProbeAnswer>;
  /** Close the kept connection: before the instance is stopped, so its drain does not wait for it. */
  close(): void;
}

/**
 * Health probes that reuse their connection while the app keeps it open: a probe every
 * `interval` on a fresh connection cost launchfit and the app a connect, an accept and a close
 * each time (bench:pipeline: most of launchfit's CPU between updates at interval 0.1 s).
 */
export function createProber(target: Omit<ProbeTarget, 'timeoutMs' | 'agent'>): Prober {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    probe: (timeoutMs) => probeHealth({ ...target, timeoutMs, agent }),
    close: () => agent.destroy(),
  };
}

/** A probe answer as one line for the log and `status`. */
export function describeProbe(a: ProbeAnswer): string {
  if (a.ok) return `${a.status} in ${a.ms} ms`;
  if (a.status) return `HTTP ${a.status} in ${a.ms} ms${a.body ? `: ${a.body}` : ''}`;
  return a.error ?? 'failed';
}

export interface HealthWait {
  healthy: boolean;
  /**
   * Why not: 'exited', 'timeout' (no 2xx within the deadline), 'failed' (a probe failed after
   * the first 2xx, before the hold was over) or 'stopped'.
   */
  reason?: 'exited' | 'timeout' | 'failed' | 'stopped';
  /** When the first 2xx came, in ms from the start of the wait. */
  passedAfterMs?: number;
  /** The last probe answers, oldest first. */
  answers: ProbeAnswer[];
}

const KEEP_ANSWERS = 5;

export interface HealthWaitOptions {
  probe: (timeoutMs: number) => Promise<ProbeAnswer>;
  timeoutMs: number;
  intervalMs: number;
  /** The first 2xx must come within this. */
  deadlineMs: number;
  /** Then the app must stay up and every probe answer 2xx for this long. */
  holdMs: number;
  exited: Promise<unknown>;
}

/**
 * Healthy means: a 2xx by the deadline, then the app stays up and every probe (every
 * `intervalMs`) answers 2xx for `holdMs` more. `exited` resolving (the app died) or a failed
 * probe after the first 2xx is unhealthy at once. Before the first 2xx a probe's own timeout is
 * cut short by the deadline; after it, every probe started within the hold is waited for and counted.
 */
export async function waitUntilHealthy(opts: HealthWaitOptions): Promise<HealthWait> {
  const t0 = Date.now();
  const answers: ProbeAnswer[] = [];
  let gone = false;
  void opts.exited.then(() => {
    gone = true;
  });
  const exited = opts.exited.then(() => 'exited' as const);
  let passedAt: number | undefined;
  const endOf = () => (passedAt === undefined ? t0 + opts.deadlineMs : passedAt + opts.holdMs);
  while (!gone && Date.now() < endOf()) {
    const started = Date.now();
    const timeoutMs =
      passedAt === undefined ? Math.max(1, Math.min(opts.timeoutMs, endOf() - started)) : opts.timeoutMs;
    const answer = await Promise.race([opts.probe(timeoutMs), exited]);
    if (answer === 'exited') break;
    answers.push(answer);
    if (answers.length > KEEP_ANSWERS) answers.shift();
    const passedAfterMs = passedAt === undefined ? undefined : passedAt - t0;
    if (!answer.ok && passedAt !== undefined) return { healthy: false, reason: 'failed', passedAfterMs, answers };
    if (answer.ok && passedAt === undefined) passedAt = Date.now();
    const wait = Math.min(opts.intervalMs - (Date.now() - started), endOf() - Date.now());
    if (wait > 0) await Promise.race([sleep(wait), exited]);
  }
  const passedAfterMs = passedAt === undefined ? undefined : passedAt - t0;
  if (gone) return { healthy: false, reason: 'exited', passedAfterMs, answers };
  return passedAt === undefined
    ? { healthy: false, reason: 'timeout', answers }
    : { healthy: true, passedAfterMs, answers };
}

export interface HealthWatch {
  stop(): void;
  last(): ProbeAnswer | undefined;
  failuresInARow(): number;
}

/**
 * Probe a running app every `intervalMs`; after `failures` failures in a row, call
 * `onUnhealthy` once and start counting again.
 */
export function watchHealth(opts: {
  probe: () => Promise<ProbeAnswer>;
  intervalMs: number;
  failures: number;
  onUnhealthy: (answers: ProbeAnswer[]) => void | Promise<void>;
}): HealthWatch {
  let stopped = false;
  let last: ProbeAnswer | undefined;
  let failed: ProbeAnswer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    if (stopped) return;
    last = await opts.probe();
    if (stopped) return;
    if (last.ok) failed = [];
    else failed.push(last);
    if (failed.length >= opts.failures) {
      const answers = failed;
      failed = [];
      await opts.onUnhealthy(answers);
    }
    if (!stopped) timer = setTimeout(() => void tick(), opts.intervalMs);
  };
  timer = setTimeout(() => void tick(), opts.intervalMs);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    last: () => last,
    failuresInARow: () => failed.length,
  };
}
