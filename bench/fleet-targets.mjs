// The targets of bench/fleet.ts, in a process of their own: COUNT HTTP servers on 127.0.0.1
// (port 0 each, so no port is guessed), each answering any request with 202 after DELAY ms.
// Prints the ports as one JSON line on stdout once all listen; runs until killed.
//   node bench/fleet-targets.mjs COUNT DELAY
import http from 'node:http';

const [count, delay] = process.argv.slice(2).map(Number);
const answer = (_req, res) =>
  setTimeout(() => res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"state":"queued"}'), delay);
const servers = await Promise.all(
  Array.from(
    { length: count },
    () =>
      new Promise((resolve, reject) => {
        const server = http.createServer(answer);
        server.on('error', reject);
        server.listen({ port: 0, host: '127.0.0.1', backlog: 511 }, () => resolve(server));
      }),
  ),
);
process.stdout.write(`${JSON.stringify(servers.map((s) => s.address().port))}\n`);
process.on('SIGTERM', () => process.exit(0));
