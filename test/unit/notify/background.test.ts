import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBackgroundTasks, sendWithRetries, waitBefore, DEFAULT_RETRY } from '../../../lib/notify/background.ts';
import type { PostResult } from '../../../lib/notify/deliver.ts';

const FAILED_RETRY: PostResult = { ok: false, retry: true, status: 503, detail: 'HTTP 503', read: 0 };
const DELIVERED: PostResult = { ok: true, retry: false, status: 200, detail: 'HTTP 200', read: 0 };

test('at most inFlight attempts are open at once; the others wait for a slot, and every message is sent', async () => {
  const tasks = createBackgroundTasks({ inFlight: 3 });
  let open = 0;
  let most = 0;
  let sent = 0;
  const hanging: Array<() => void> = [];
  const send = () =>
    new Promise<PostResult>((resolve) => {
      open++;
      most = Math.max(most, open);
      hanging.push(() => {
        open--;
        sent++;
        resolve(DELIVERED);
      });
    });
  const policy = { ...DEFAULT_RETRY, attempts: 1 };
  const runs = Array.from({ length: 10 }, () =>
    tasks.run(
      async () => {
        await sendWithRetries(send, policy, { stop: tasks.signal, gate: tasks.gate });
      },
      (e) => {
        throw e;
      },
    ),
  );
  await new Promise((r) => setTimeout(r, 20));
  assert.is(open, 3, 'three requests open, the rest waiting');
  assert.equal(tasks.load, { active: 3, waiting: 7 });
  while (sent < 10) {
    hanging.shift()?.();
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(runs);
  assert.is(most, 3);
  assert.is(sent, 10);
  assert.equal(tasks.load, { active: 0, waiting: 0 });
});

test('a wait between attempts holds no slot: another message goes out meanwhile', async () => {
  const tasks = createBackgroundTasks({ inFlight: 1 });
  const order: string[] = [];
  const policy = { attempts: 2, backoffMs: 200, maxWaitMs: 1_000 };
  const first = sendWithRetries(
    async (attempt) => {
      order.push(`a${attempt}`);
      return attempt === 1 ? FAILED_RETRY : DELIVERED;
    },
    policy,
    { stop: tasks.signal, gate: tasks.gate },
  );
  await new Promise((r) => setTimeout(r, 50));
  const second = sendWithRetries(
    async () => {
      order.push('b1');
      return DELIVERED;
    },
    policy,
    { stop: tasks.signal, gate: tasks.gate },
  );
  await Promise.all([first, second]);
  assert.equal(order, ['a1', 'b1', 'a2']);
});

test('the backoff doubles and Retry-After wins when longer, both capped', () => {
  const policy = { attempts: 5, backoffMs: 1_000, maxWaitMs: 5_000 };
  assert.equal(
    [1, 2, 3, 4].map((a) => waitBefore(policy, a)),
    [1_000, 2_000, 4_000, 5_000],
  );
  assert.is(waitBefore(policy, 1, 3_000), 3_000);
  assert.is(waitBefore(policy, 1, 600_000), 5_000);
});

test.run();
