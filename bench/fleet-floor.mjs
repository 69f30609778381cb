// The floor of bench/fleet.ts: the least a Node client can do for the same fan-out. The same
// signed `GET /?repo=site` with the same headers server-update sends, to every URL of LIST at
// once, one `node:net` socket each, the answers read into one shared buffer; prints the status
// line's code per target. No argument parsing, no logger, no retries, no timeouts, no answer
// parser beyond the status code: what it costs over `node -e 0` is what Node itself needs for N
// connections, and server-update cannot go below it.
//   node bench/fleet-floor.mjs LIST SECRET_FILE
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [listFile, secretFile] = process.argv.slice(2);
const secret = readFileSync(secretFile, 'utf8').trim();
const urls = readFileSync(listFile, 'utf8').split('\n').filter(Boolean);
const readBuffer = Buffer.allocUnsafe(65_536);
const nonces = randomBytes(16 * urls.length);
let out = '';
let left = urls.length;

urls.forEach((url, i) => {
  const [, host, port] = /^http:\/\/([^:/]+):(\d+)/.exec(url);
  const path = '/?repo=site';
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = nonces.toString('hex', i * 16, i * 16 + 16);
  const signature = createHmac('sha256', secret).update(`GET\n${path}\n${timestamp}\n${nonce}`).digest('hex');
  let head = '';
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    socket.destroy();
    out += `${head.slice(9, 12)} ${url}\n`;
    if (--left === 0) process.stdout.write(out);
  };
  const socket = net.connect({
    host,
    port: Number(port),
    onread: {
      buffer: readBuffer,
      callback: (length, buffer) => {
        head += buffer.toString('latin1', 0, length);
        if (head.includes('\r\n\r\n')) finish();
        return true;
      },
    },
  });
  socket.on('end', finish);
  socket.on('error', (error) => {
    throw error;
  });
  socket.write(
    `GET ${path} HTTP/1.1\r\nUser-Agent: shipkit-server-update\r\nAccept: application/json\r\nX-Shipkit-Timestamp: ${timestamp}\r\nX-Shipkit-Nonce: ${nonce}\r\nX-Shipkit-Signature: sha256=${signature}\r\nConnection: close\r\nHost: ${host}:${port}\r\n\r\n`,
    'latin1',
  );
});
