// Two `release publish` processes started at the same moment to one S3 DEST (s3rver on
// loopback, which ignores If-None-Match: the lock's claims need none): three rounds, each with
// exactly one winner, the other exiting 1 naming the lock's holder with nothing written; `release
// history` verifies the chain. A claim left by a rollback killed with -9 is reported, then taken over.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killedHolder, makeApps, raceRounds, type Dest } from '../../fixtures/publish-race.ts';
import { s3rverEnv, startS3rver } from '../../fixtures/s3rver.ts';

test('S3 DEST: two publishers at once, three times; a killed holder reported, then taken over', async () => {
  const s3rver = await startS3rver('releases');
  const p = await makeApps();
  const base = `${s3rver.endpoint}/releases/app-updates`;
  const env = s3rverEnv(s3rver.endpoint);
  const lockClaims = async () => {
    const list = await (
      await fetch(`${s3rver.endpoint}/releases?list-type=2&prefix=app-updates/.shipkit-publish.lock/`)
    ).text();
    return [...list.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
  };
  const d: Dest = {
    to: 's3://releases/app-updates',
    env,
    async read(name) {
      const res = await fetch(`${base}/${name}`);
      return res.status === 200 ? Buffer.from(await res.arrayBuffer()) : (await res.arrayBuffer(), undefined);
    },
    async ageLock() {
      const claims = await lockClaims();
      assert.equal(claims.length, 2, 'the killed holder left its claim and its held mark');
      for (const key of claims) {
        const owner = JSON.parse(await (await fetch(`${s3rver.endpoint}/releases/${key}`)).text());
        const renewed = new Date(Date.now() - 11 * 60_000).toISOString();
        const put = await fetch(`${s3rver.endpoint}/releases/${key}`, {
          method: 'PUT',
          body: JSON.stringify({ ...owner, renewed }),
        });
        assert.is(put.status, 200);
      }
    },
  };
  try {
    const winners = await raceRounds(p, d);
    assert.equal(await lockClaims(), [], 'no claim left after each publish');
    await killedHolder(p, d, winners);
    assert.equal(await lockClaims(), []);
  } finally {
    await s3rver.close();
  }
});

test.run();
