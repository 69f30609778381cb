// One delivery worker's life on its IPC channel (lib/server/delivery-worker.ts), the channel a
// stand-in that records what the worker sends: ready, listening once told to serve, stopped when
// told to, also when the stop comes while it is still starting.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import {
  serveDeliveryWorker,
  type Channel,
  type ToPrimary,
  type ToWorker,
  type WorkerInit,
} from '../../../lib/server/delivery-worker.ts';
import { accepting, tmpDir, waitFor } from '../../_helpers/common.ts';

function fakeChannel() {
  const emitter = new EventEmitter();
  const sent: ToPrimary[] = [];
  const channel = {
    send: (message: ToPrimary) => void sent.push(message),
    on: (event: string, listener: (message: ToWorker) => void) => void emitter.on(event, listener),
  } as Channel;
  return { channel, sent, tell: (message: ToWorker) => emitter.emit('message', message) };
}

const init = (port = 0): WorkerInit => ({
  config: { file: 'shipkit.yml', repos: new Map() },
  secrets: { repos: new Map() },
  keepsBody: false,
  listen: { host: '127.0.0.1', port },
  primary: '/nonexistent/primary.sock',
  maxBody: 1 << 20,
  bodyTimeoutMs: 1000,
  headersTimeoutMs: 1000,
  requestTimeoutMs: 1000,
  idleTimeoutMs: 1000,
  tmpDir: tmpDir('shipkit-worker-unit-'),
  previews: false,
});

/** Whether something accepts connections at the worker's `url`. */
const listensAt = (url: string) => accepting(Number(new URL(url).port));

test('ready, then listening once told to serve; a stop closes the server and ends with 0', async () => {
  const { channel, sent, tell } = fakeChannel();
  const ended = serveDeliveryWorker(channel, silentLogger);
  assert.equal(sent, [{ t: 'ready' }]);
  tell({ t: 'init', init: init() });
  await waitFor(() => sent.length >= 2, { what: 'the worker to say it listens' });
  const listening = sent[1] as { t: 'listening'; url: string };
  assert.is(listening.t, 'listening');
  assert.ok(await listensAt(listening.url), 'the worker listens');
  tell({ t: 'stop', graceMs: 100 });
  assert.is(await ended, 0);
  assert.not.ok(await listensAt(listening.url), 'nothing listens after the stop');
});

test('a stop while the worker is still starting: it waits for the start, then closes what started', async () => {
  const { channel, sent, tell } = fakeChannel();
  const ended = serveDeliveryWorker(channel, silentLogger);
  tell({ t: 'init', init: init() });
  tell({ t: 'stop', graceMs: 100 });
  assert.is(await ended, 0);
  const listening = sent.find((m) => m.t === 'listening') as { url: string } | undefined;
  assert.ok(listening, `the start finished before the worker ended: ${JSON.stringify(sent)}`);
  await new Promise((r) => setTimeout(r, 200));
  assert.not.ok(await listensAt(listening.url), 'no server is left listening');
});

test('a stop before any init ends at once with 0; a start that fails says why and ends with 1', async () => {
  const quiet = fakeChannel();
  const ended = serveDeliveryWorker(quiet.channel, silentLogger);
  quiet.tell({ t: 'stop', graceMs: 100 });
  assert.is(await ended, 0);
  assert.equal(quiet.sent, [{ t: 'ready' }]);

  const taken = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => taken.once('listening', r));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const failing = fakeChannel();
    const failed = serveDeliveryWorker(failing.channel, silentLogger);
    failing.tell({ t: 'init', init: init(port) });
    assert.is(await failed, 1);
    const last = failing.sent.at(-1) as { t: string; error?: string };
    assert.is(last.t, 'failed');
    assert.match(last.error ?? '', /EADDRINUSE|in use/);
  } finally {
    taken.close();
  }
});

test.run();
