// A preview's port: picked free and not handed out twice (previews launched at once got the same
// one, and the second launchfit found it in use), and picked again when another program took it
// between the pick and launchfit's bind.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, onFreshPort } from '../../../lib/previews/launch.ts';

/** Binds 127.0.0.1:port as launchfit's `app.listen` would: EADDRINUSE when it is taken. */
function bind(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`app.listen 127.0.0.1:${port}: the port is already in use (${error.code})`)),
    );
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** The error `run` rejects with (it must reject). */
async function rejection(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('it resolved');
}

test('picks running at once never hand out the same port', async () => {
  // 300 random picks among the ~2,700 ports below the ephemeral range would share one almost surely.
  const ports = await Promise.all(Array.from({ length: 300 }, () => freePort()));
  assert.is(new Set(ports).size, ports.length);
  for (const port of ports) assert.ok(port >= 1024 && port < 65536, String(port));
});

test('a fresh port taken before the bind: launched on the next pick, and told', async () => {
  const first = await freePort();
  const thief = await bind(first);
  const bound: net.Server[] = [];
  const told: Array<[number, number]> = [];
  try {
    const port = await onFreshPort(first, {
      fresh: true,
      pick: freePort,
      launch: async (on) => bound.push(await bind(on)),
      taken: async (was, next) => {
        told.push([was, next]);
      },
    });
    assert.is.not(port, first);
    assert.equal(told, [[first, port]]);
    assert.is(bound.length, 1);
    assert.is((bound[0].address() as net.AddressInfo).port, port);
  } finally {
    for (const s of [thief, ...bound]) s.close();
  }
});

test('a port launchfit holds (not fresh), another failure, or the third taken port: thrown as it came', async () => {
  const taken = await freePort();
  const thief = await bind(taken);
  try {
    let launches = 0;
    const launch = async (on: number) => {
      launches++;
      return bind(on === taken ? on : taken);
    };
    assert.match(
      await rejection(() => onFreshPort(taken, { fresh: false, pick: freePort, launch, taken: async () => {} })),
      /EADDRINUSE/,
    );
    assert.is(launches, 1, 'a held port is not swapped');
    launches = 0;
    assert.match(
      await rejection(() => onFreshPort(taken, { fresh: true, pick: freePort, launch, taken: async () => {} })),
      /EADDRINUSE/,
    );
    assert.is(launches, 3, 'three launches, then the failure');
    launches = 0;
    assert.match(
      await rejection(() =>
        onFreshPort(taken, {
          fresh: true,
          pick: freePort,
          launch: async () => {
            launches++;
            throw new Error('the app did not answer its health check');
          },
          taken: async () => {},
        }),
      ),
      /health check/,
    );
    assert.is(launches, 1);
  } finally {
    thief.close();
  }
});

test.run();
