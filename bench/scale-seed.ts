// bench:scale's hosts part without the announcing minute (`--seeded`): the fleet as it stands after
// its hosts have run a while, every host enrolled on `version` (SEQ `seq`), written into the queue
// database the nodes share in one go; the nodes read it at their next look.
import pg from 'pg';
import { rolloutBucket } from '../lib/release/format/bucket.ts';

export async function seedFleet(
  url: string,
  { app, ids, version, seq }: { app: string; ids: string[]; version: string; seq: number },
): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const at = Date.now() - 120_000;
    const signedAt = Math.floor(at / 1000);
    for (let i = 0; i < ids.length; i += 5_000) {
      const entries = ids.slice(i, i + 5_000).map((host) => ({
        app,
        host,
        version,
        previous: '',
        seq,
        bucket: rolloutBucket(host, version),
        result: 'running',
        reason: '',
        seconds: 0,
        at,
        signed_at: signedAt,
        enrolled: true,
      }));
      await client.query(
        `INSERT INTO shipkit.fleet_hosts (app, host, seq, at, signed_at, enrolled, nonces, entry)
         SELECT $1, e->>'host', $2, $3, $4, true, '{}', e - 'app'
         FROM jsonb_array_elements($5::jsonb) AS e`,
        [app, seq, at, signedAt, JSON.stringify(entries)],
      );
    }
  } finally {
    await client.end();
  }
}
