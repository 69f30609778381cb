// Steady load with autocannon that records every answer and every failure with its time, so the
// run can be cut into windows: steady state, and each update (from the request to the updater's
// answer). Per window: failed requests (connection errors and resets, timeouts, non-2xx), the
// longest gap without a 2xx answer, and the p99 latency.
//
// autocannon writes the next request on a keep-alive connection as soon as an answer arrives,
// even one that says `Connection: close`: the request lands on a closing socket and comes back as
// a reset, whichever server drains. Browsers and Node's http agent honour the header, so the
// clients here do too: after such an answer they wait for the close and reconnect (see
// makeClientHonest for the other two things fixed).

export interface WindowStats {
  ok: number;
  failed: number;
  /** Failures by kind: an error code, `timeout` or `HTTP <status>`. */
  kinds: Record<string, number>;
  maxGapMs: number;
  p99Ms: number;
}

export interface LoadRun {
  /** Mark the start of an update window; returns its end marker. */
  mark(): () => void;
  /** Mark the start of a time that belongs to no window (the bench's own work); returns its end marker. */
  exclude(): () => void;
  stop(): Promise<{ windows: WindowStats[]; steady: WindowStats; bodies: Set<string>; requests: number }>;
}

interface Event {
  t: number;
  ok: boolean;
  ms?: number;
  kind?: string;
}

interface Client {
  on(event: string, f: (...a: unknown[]) => void): void;
  _doRequest(...a: unknown[]): void;
  _connect(): void;
  pipelinedRequests: { size(): number; clear(): void };
  parser: { type: string; initialize(type: string): void };
}

/**
 * Make an autocannon client behave as a real HTTP/1.1 client: honour `Connection: close`, and on
 * a new connection forget the requests of the old one. autocannon keeps them queued, so every
 * later answer on that client would be matched with an older request and its latency inflated;
 * and a request the server closed the connection on without answering would go uncounted:
 * `onLost` counts it (errors and timeouts are counted by autocannon itself).
 */
function makeClientHonest(client: Client, onLost: (n: number) => void): void {
  let closing = false;
  let errored = false;
  client.on('headers', (info) => {
    const h = info as { shouldKeepAlive?: boolean };
    if (h.shouldKeepAlive === false) closing = true;
  });
  client.on('connError', () => {
    errored = true;
  });
  const doRequest = client._doRequest.bind(client);
  const connect = client._connect.bind(client);
  client._doRequest = (...a) => {
    if (!closing) doRequest(...a);
  };
  client._connect = () => {
    const lost = client.pipelinedRequests.size();
    if (lost && !errored) onLost(lost);
    client.pipelinedRequests.clear();
    client.parser.initialize(client.parser.type);
    closing = false;
    errored = false;
    connect();
  };
}

const percentile = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/** A gap counts for an update window it ends or starts in; for steady state only when wholly in it. */
function statsOf(events: Event[], ranges: Array<[number, number]>, gaps: 'touching' | 'within'): WindowStats {
  const inside = (t: number) => ranges.some(([a, b]) => t >= a && t <= b);
  const kinds: Record<string, number> = {};
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  let maxGapMs = 0;
  let lastOk: number | undefined;
  for (const e of events) {
    if (e.ok) {
      const counts = gaps === 'within' ? inside(e.t) && inside(lastOk!) : inside(e.t) || inside(lastOk!);
      if (lastOk !== undefined && counts) maxGapMs = Math.max(maxGapMs, e.t - lastOk);
      lastOk = e.t;
    }
    if (!inside(e.t)) continue;
    if (e.ok) {
      ok++;
      latencies.push(e.ms!);
    } else {
      failed++;
      kinds[e.kind!] = (kinds[e.kind!] ?? 0) + 1;
    }
  }
  return { ok, failed, kinds, maxGapMs, p99Ms: percentile(latencies, 99) };
}

/** 50 connections (by default) of back-to-back GETs against 127.0.0.1:port until stopped. */
export async function startLoad({
  port,
  connections = 50,
  rate = 0,
}: {
  port: number;
  connections?: number;
  rate?: number;
}): Promise<LoadRun> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- autocannon ships no types
  const { default: autocannon } = (await import('autocannon' as string)) as { default: (opts: object) => any };
  const events: Event[] = [];
  const bodies = new Set<string>();
  const ranges: Array<[number, number]> = [];
  const excluded: Array<[number, number]> = [];
  const startedAt = performance.now();
  const instance = autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration: 3600,
    timeout: 5,
    ...(rate ? { overallRate: rate } : {}),
    setupClient: (client: unknown) => {
      const c = client as Client;
      makeClientHonest(c, (n) => {
        for (let i = 0; i < n; i++) events.push({ t: performance.now(), ok: false, kind: 'closed unanswered' });
      });
      c.on('body', (body) => {
        if (bodies.size < 100) bodies.add(String(body).split(' ')[0]);
      });
    },
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    const ok = status >= 200 && status < 300;
    events.push({ t: performance.now(), ok, ms, kind: ok ? undefined : `HTTP ${status}` });
  });
  instance.on('reqError', (error: NodeJS.ErrnoException) => {
    events.push({
      t: performance.now(),
      ok: false,
      kind: error.code ?? (/timed out/.test(error.message) ? 'timeout' : error.message),
    });
  });
  const done = new Promise<{ requests: { total: number } }>((resolve) => instance.on('done', resolve));
  const open = (list: Array<[number, number]>) => () => {
    const range: [number, number] = [performance.now(), Infinity];
    list.push(range);
    return () => {
      range[1] = performance.now();
    };
  };
  return {
    mark: open(ranges),
    exclude: open(excluded),
    async stop() {
      const stoppedAt = performance.now();
      instance.stop();
      const result = await done;
      const windows = ranges.map((r) => statsOf(events, [r], 'touching'));
      // Steady state: everything outside the update windows and the excluded times, after a second of warm-up.
      const steady: Array<[number, number]> = [];
      let from = startedAt + 1000;
      for (const [a, b] of [...ranges, ...excluded].sort((x, y) => x[0] - y[0])) {
        if (a > from) steady.push([from, a]);
        from = Math.max(from, b);
      }
      if (stoppedAt > from) steady.push([from, stoppedAt]);
      return { windows, steady: statsOf(events, steady, 'within'), bodies, requests: result.requests.total };
    },
  };
}
