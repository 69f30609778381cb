// One `app.listen` entry of launchify.yml: a TCP address (an IP literal and a fixed port) or a
// Unix socket path, resolved against the deploy folder. See docs/launchfit.md "Zero downtime".
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { parseListen } from '../../http/server.ts';

export type ListenSpec =
  { kind: 'tcp'; host: string; port: number; text: string } | { kind: 'unix'; path: string; text: string };

/** One `app.listen` entry: `HOST:PORT` (an IP literal), `[IPv6]:PORT`, or a Unix socket path. */
export function parseListenSpec(text: string, baseDir: string): ListenSpec {
  if (text.includes('/')) return { kind: 'unix', path: path.resolve(baseDir, text), text };
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
