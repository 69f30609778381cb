// bench:push's load and its finish line. The load: one client per host sending GET / on a new
// connection each time, back to back with a pause, counting the answers that were not 200 (a
// refused connection, a reset, a timeout: a user's failed request), and when each host last
// answered another version than the new one. The finish line: each host's first answer of the
// new version, probed on its own connection every few ms.
import http from 'node:http';

export interface Load {
  /**
   * Stops the clients; the requests sent and the ones that failed, over every host, and for each
   * port the last time (epoch ms) it answered a version other than the new one.
   */
  stop(): Promise<{ sent: number; failed: number; errors: string[]; lastOld: Map<number, number> }>;
}

const PAUSE_MS = 10;

/** GET / on 127.0.0.1:`port` on a connection of its own: the body, or the reason it failed. */
export function getOnce(port: number, timeoutMs = 2000): Promise<{ ok: boolean; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ ok: res.statusCode === 200, body: body.trim() || `HTTP ${res.statusCode}` }));
      res.on('error', (e) => resolve({ ok: false, body: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, body: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

/** Starts one client per port, counting answers that are not `version`; they run until `stop`. */
export function startLoad(ports: number[], version: string): Load {
  let running = true;
  let sent = 0;
  const errors: string[] = [];
  const lastOld = new Map<number, number>();
  const client = async (port: number) => {
    while (running) {
      const r = await getOnce(port);
      sent++;
      if (!r.ok) errors.push(`:${port} ${r.body}`);
      else if (r.body.split(' ')[0] !== version) lastOld.set(port, Date.now());
      await new Promise((done) => setTimeout(done, PAUSE_MS));
    }
  };
  const clients = ports.map(client);
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      return { sent, failed: errors.length, errors, lastOld };
    },
  };
}

/**
 * When each port first answered a body starting with `version ` (epoch ms), probing every 20 ms
 * until `stop`; the map holds the ports that did.
 */
export function watchVersion(ports: number[], version: string): { seen: Map<number, number>; stop(): Promise<void> } {
  let running = true;
  const seen = new Map<number, number>();
  const probe = async (port: number) => {
    while (running && !seen.has(port)) {
      const r = await getOnce(port, 1000);
      if (r.ok && r.body.split(' ')[0] === version) seen.set(port, Date.now());
      else await new Promise((done) => setTimeout(done, 20));
    }
  };
  const probes = ports.map(probe);
  return {
    seen,
    async stop() {
      running = false;
      await Promise.all(probes);
    },
  };
}
