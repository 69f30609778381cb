// The tiny HTTP app every mode of bench/zero-downtime.ts updates, the same file for each: it
// serves on the sockets launchfit hands it (LISTEN_FDS, systemd's protocol) or binds $PORT itself
// (pm2, launchfit without app.listen), tells pm2 it is ready once listening (`wait_ready`), and on
// SIGTERM or SIGINT (pm2's kill signal) drains as a well-behaved app does: its answers carry
// `Connection: close` for 300 ms, then it stops accepting and exits once its connections are done.
// A file `crash` in its folder makes it exit at once (a bad release).
const fs = require('node:fs');
const http = require('node:http');
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

function drain() {
  if (draining) return;
  draining = true;
  setTimeout(() => {
    let open = servers.length;
    for (const server of servers) {
      server.close(() => { if (--open === 0) process.exit(0); });
      server.closeIdleConnections();
    }
  }, 300);
}
process.on('SIGTERM', drain);
process.on('SIGINT', drain);
