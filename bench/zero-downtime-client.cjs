// The load generator of `npm run bench:zero-downtime`, in a process of its own so the bench's own
// work (publishing releases, pm2's CLI) never stalls it. CONNECTIONS loops, each sending GET /
// one after another, at RATE requests/s in all (0: as fast as answers come), over one keep-alive
// http.Agent of up to CONNECTIONS sockets (it honours `Connection: close` and reconnects, as a
// browser does). The agent hands out the socket freed last, so only as many connections as
// requests in flight at once are busy: at 1,000 requests/s a few, not CONNECTIONS.
// Every request is recorded: its start (epoch ms), its latency and its outcome (`ok`, an error
// code such as ECONNREFUSED or ECONNRESET, `timeout`, or `HTTP <status>`). On a line `stop` on
// stdin it writes them as JSON to OUT and exits 0, with `fresh`: the indexes of the requests that
// opened a connection of their own (the first on it, as after a `Connection: close`).
//   node bench/zero-downtime-client.cjs PORT CONNECTIONS RATE OUT
const http = require('node:http');
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const [port, connections, rate, out] = [
  Number(process.argv[2]),
  Number(process.argv[3]),
  Number(process.argv[4]),
  process.argv[5],
];
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const TIMEOUT_MS = 5000;
/** Flat records: start epoch ms, latency ms, outcome index into `kinds`. */
const rec = [];
/** Indexes (into rec / 3) of the requests sent on a new connection. */
const fresh = [];
const kinds = ['ok'];
const kindOf = (k) => {
  let i = kinds.indexOf(k);
  if (i < 0) {
    i = kinds.length;
    kinds.push(k);
  }
  return i;
};
let stopping = false;

function once() {
  return new Promise((resolve) => {
    const t = Date.now();
    const t0 = performance.now();
    let done = false;
    const end = (kind) => {
      if (done) return;
      done = true;
      if (!req.reusedSocket) fresh.push(rec.length / 3);
      rec.push(t, Math.round((performance.now() - t0) * 1000) / 1000, kindOf(kind));
      resolve();
    };
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => end(res.statusCode >= 200 && res.statusCode < 300 ? 'ok' : `HTTP ${res.statusCode}`));
      res.on('error', (e) => end(e.code || 'error'));
    });
    req.on('timeout', () => {
      req.destroy();
      end('timeout');
    });
    req.on('error', (e) => end(e.code || e.message));
  });
}

async function loop(i) {
  const every = rate > 0 ? (connections * 1000) / rate : 0;
  let next = performance.now() + (every * i) / connections;
  while (!stopping) {
    if (every) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      next = Math.max(next + every, performance.now() - every);
    }
    await once();
    // A refused connection answers at once: do not spin.
    if (!every && rec[rec.length - 1] !== 0) await new Promise((r) => setTimeout(r, 1));
  }
}

const loops = Array.from({ length: connections }, (_, i) => loop(i));
process.stdin.setEncoding('utf8');
process.stdin.on('data', async (d) => {
  if (!d.includes('stop') || stopping) return;
  stopping = true;
  await Promise.all(loops);
  fs.writeFileSync(out, JSON.stringify({ kinds, rec, fresh }));
  process.exit(0);
});
process.stdout.write('ready\n');
