// The fleet's Releases view with queue: (docs/fleet.md "Releases"): node A reads the app's ledger
// at its DEST, verifies it and keeps the bytes in shipkit.ledgers; node B, whose DEST folder is
// not on its disk, answers GET /fleet/APP/releases from that copy, verified again; a copy edited
// in the database is shown as an error, never as releases.
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signRequest } from '../../../lib/http/signing.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { makeWorld } from '../../fixtures/launchfit/world.ts';
import { queueConfig, worldEnv } from '../../fixtures/workers.ts';
import { startScript, type Server } from '../../_helpers/common.ts';

const FLEET_SECRET = `fleet-${randomUUID()}`;

async function releases(server: Server) {
  const res = await fetch(`${server.url}/fleet/my-app/releases`, {
    headers: signRequest(FLEET_SECRET, 'GET', '/fleet/my-app/releases'),
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

test("a node without the ledger's DEST shows the copy another node verified and kept", async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const w = await makeWorld();
  const env = worldEnv(pg, { FLEET_APP: FLEET_SECRET });
  const node = (name: string, ledger: string) => {
    const { config } = queueConfig(name, { 'octo/site': {} }, { concurrency: 0 });
    appendFileSync(
      config,
      `fleet:\n  my-app:\n    secret: env:FLEET_APP\n    ledger: ${ledger}\n    keys: ${w.pubAsc}\n`,
    );
    return startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', name], { env });
  };
  let a: Server | undefined;
  let b: Server | undefined;
  try {
    for (const version of ['1.0', '1.1']) await w.publish(version);
    a = await node('a', w.updates);
    // B's DEST is a folder of another machine: not on this disk.
    b = await node('b', path.join(w.base, 'on-another-machine'));
    const before = await releases(b);
    assert.is(before.status, 200);
    assert.match(before.json.ledger.error, /no ledger\.jsonl/, 'nothing kept yet: B says so, no releases');
    assert.equal(before.json.releases, []);

    const fromA = await releases(a);
    assert.equal([fromA.json.ledger.error, fromA.json.releases.map((r: any) => r.version)], [null, ['1.1', '1.0']]);
    assert.is(await pg.sql("SELECT app || ' ' || dest FROM shipkit.ledgers"), `my-app ${w.updates}`);

    // B reads the copy again after its 30 s; a restart reads at once.
    await b.stop();
    b = await node('b', path.join(w.base, 'on-another-machine'));
    const copy = await releases(b);
    assert.is(copy.json.ledger.error, null, JSON.stringify(copy.json.ledger));
    assert.match(copy.json.ledger.from, /the database's copy of \d{4}-/);
    assert.equal(
      copy.json.releases.map((r: any) => [r.version, r.state]),
      [
        ['1.1', 'current'],
        ['1.0', 'previous'],
      ],
    );

    // Someone with the database edits the copy: B verifies it and refuses it.
    await pg.sql(
      'UPDATE shipkit.ledgers SET ledger = convert_to(replace(convert_from(ledger, \'UTF8\'), \'"version":"1.0"\', \'"version":"0.9"\'), \'UTF8\')',
    );
    await b.stop();
    b = await node('b', path.join(w.base, 'on-another-machine'));
    const edited = await releases(b);
    assert.match(edited.json.ledger.error, /signature|ledger entry/);
    assert.equal(edited.json.releases, []);
  } finally {
    await a?.stop();
    await b?.stop();
    await w.server.close();
  }
});

test.run();
