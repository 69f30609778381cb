// The tiny HTTP app every zero-downtime bench updates (bench/zero-downtime.ts and
// bench/zero-downtime-shipped.ts), the same file for each, and the example docs/launchfit.md points
// to for draining: it serves on the sockets launchfit hands it (LISTEN_FDS, systemd's protocol) or
// binds $PORT itself (pm2, launchfit without app.listen), tells pm2 it is ready once listening
// (`wait_ready`), and on SIGTERM (launchfit's app.kill) or SIGINT (pm2's) drains:
//   1. it stops accepting at once (the listening socket is shared: new connections go to the new
//      instance) but keeps its open connections;
//   2. every answer from then on carries `Connection: close`, so a keep-alive client finishes its
//      request and reconnects (to the new instance) instead of finding its connection closed;
//   3. connections that send nothing within IDLE_GRACE_MS are closed; it exits when none is left.
// A file `crash` in its folder makes it exit at once (a bad release).
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const version = fs.readFileSync(path.join(__dirname, 'version.txt'), 'utf8').trim();
if (fs.existsSync(path.join(__dirname, 'crash'))) {
  console.error(`app ${version}: crashing on purpose`);
  process.exit(3);
}

let draining = false;
const handle = (req, res) => {
  if (draining) res.setHeader('connection', 'close');
  res.end(`${version} ${process.pid}\n`);
};

function listenFds() {
  if (Number(process.env.LISTEN_PID) !== process.pid) return [];
  return Array.from({ length: Number(process.env.LISTEN_FDS) || 0 }, (_, i) => 3 + i);
}

const fds = listenFds();
const servers = (fds.length ? fds : [undefined]).map(() => http.createServer(handle));
let listening = servers.length;
const ready = () => {
  if (--listening > 0) return;
  if (process.send) process.send('ready');
};
servers.forEach((server, i) => {
  server.keepAliveTimeout = 5000;
  if (fds.length) server.listen({ fd: fds[i] }, ready);
  else server.listen(Number(process.env.PORT), '127.0.0.1', ready);
});

const IDLE_GRACE_MS = 1000;

function drain() {
  if (draining) return;
  draining = true;
  let open = servers.length;
  for (const server of servers) {
    // net.Server's close: stop accepting, keep the open connections (http.Server's close would also
    // close the idle keep-alive ones at once, racing a client that is just sending on one).
    net.Server.prototype.close.call(server, () => {
      if (--open === 0) process.exit(0);
    });
    setTimeout(() => server.closeIdleConnections(), IDLE_GRACE_MS).unref();
  }
}
process.on('SIGTERM', drain);
process.on('SIGINT', drain);
