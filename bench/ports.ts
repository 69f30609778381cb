// Ports for benches that must hand a port number to a process before it binds (launchfit's
// app.listen, a control listener, hook-server --listen): chosen BELOW the kernel's ephemeral
// range (/proc/sys/net/ipv4/ip_local_port_range), where no outgoing connection is ever given a
// local port, so a busy machine's clients cannot take it between the check and the bind (a
// freePort() from port 0 lies inside that range, which is how bench:pipeline met EADDRINUSE).
// Each port is checked by binding it once, and never handed out twice by this process.
import { readFileSync } from 'node:fs';
import net from 'node:net';

const given = new Set<number>();

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

const canBind = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });

/** A port on 127.0.0.1 outside the ephemeral range that was free a moment ago. */
export async function quietPort(): Promise<number> {
  const high = Math.min(ephemeralLow(), 65536) - 1;
  const low = Math.max(10_000, high - 20_000);
  for (let tries = 0; tries < 200; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (given.has(port)) continue;
    given.add(port);
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found between ${low} and ${high}`);
}

/** Whether something accepts connections on 127.0.0.1:`port` now (the tests' probe). */
export { accepting } from '../test/_helpers/common.ts';
