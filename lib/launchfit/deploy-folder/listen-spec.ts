// One `app.listen` entry of launchify.yml: a TCP address (an IP literal and a fixed port) or a
// Unix socket path, resolved against the deploy folder. See docs/launchfit.md "Zero downtime".
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { parseListen } from '../../http/server.ts';

export type ListenSpec =
  { kind: 'tcp'; host: string; port: number; text: string } | { kind: 'unix'; path: string; text: string };

/** The longest Unix socket path: sun_path's 108 bytes less the NUL. */
const UNIX_PATH_MAX = 107;

/** One `app.listen` entry: `HOST:PORT` (an IP literal), `[IPv6]:PORT`, or a Unix socket path. */
export function parseListenSpec(text: string, baseDir: string): ListenSpec {
  if (text.includes('/')) {
    const file = path.resolve(baseDir, text);
    // sun_path holds 108 bytes with the NUL; a longer path is cut there by the kernel (and libuv
    // binds the cut one without a word), so the app would listen somewhere else.
    if (Buffer.byteLength(file) > UNIX_PATH_MAX)
      throw new ConfigError(
        `${JSON.stringify(text)}: the socket path ${file} is ${Buffer.byteLength(file)} bytes; a Unix socket ` +
          `path can be at most ${UNIX_PATH_MAX}. Choose a shorter path (an absolute one such as /run/APP/app.sock).`,
      );
    return { kind: 'unix', path: file, text };
  }
  const { host, port } = parseListen(text);
  if (!/:\d+$/.test(text.trim()))
    throw new ConfigError(`${JSON.stringify(text)} has no port; write HOST:PORT, e.g. 127.0.0.1:8080.`);
  if (!net.isIP(host))
    throw new ConfigError(
      `${JSON.stringify(text)}: the host must be an IP address (127.0.0.1, 0.0.0.0, [::1], [::]), not a name.`,
    );
  if (port === 0)
    throw new ConfigError(`${JSON.stringify(text)}: port 0 would change with every start; give a fixed port.`);
  return { kind: 'tcp', host, port, text };
}
