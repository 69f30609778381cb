// The peer of the delivery benches: Debian's webhook (adnanh/webhook 2.8) with one hook, `site`,
// checking the same HMAC of the body as hook-server and running /bin/true (keeping nothing).
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, tmpDir, waitFor } from '../test/_helpers/common.ts';

/** webhook's hooks.json in `dir`: the hook `site`, checking X-Hub-Signature-256 with `secret`. */
export function writeHooksFile(dir: string, secret: string): string {
  const hooks = path.join(dir, 'hooks.json');
  writeFileSync(
    hooks,
    JSON.stringify([
      {
        id: 'site',
        'execute-command': '/bin/true',
        'response-message': 'ok',
        'trigger-rule': {
          match: {
            type: 'payload-hmac-sha256',
            secret,
            parameter: { source: 'header', name: 'X-Hub-Signature-256' },
          },
        },
      },
    ]),
  );
  return hooks;
}

/** webhook on 127.0.0.1, once it answers; undefined when it is not installed. */
export async function startWebhookPeer(
  secret: string,
): Promise<{ url: string; port: number; stop(): void } | undefined> {
  if (spawnSync('sh', ['-c', 'command -v webhook']).status !== 0) return undefined;
  const hooks = writeHooksFile(tmpDir(), secret);
  const port = await freePort();
  const child = spawn('webhook', ['-hooks', hooks, '-ip', '127.0.0.1', '-port', String(port)], { stdio: 'ignore' });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined)) !== undefined, {
    what: 'webhook',
  });
  return { url: `http://127.0.0.1:${port}/hooks/site`, port, stop: () => child.kill('SIGKILL') };
}
