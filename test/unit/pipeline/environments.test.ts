// An app's environments put to work (lib/pipeline/environments.ts): names told from DESTs, unknown
// apps and environments named with the ones there are, hook-server's URL, and what admitPromotion
// refuses without approvals: a closed window, --force or --override with no approval, a release the
// source's fleet never took whole.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError, ValidationError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { parseShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import {
  admitPromotion,
  environmentOf,
  fleetUrlOf,
  GateClosed,
  namesEnvironment,
  whileGateClosed,
} from '../../../lib/pipeline/environments.ts';
import type { LedgerEntry } from '../../../lib/release/format/ledger.ts';

const config = parseShipkitConfig(
  parseYamlText(
    `listen: 0.0.0.0:9000
fleet:
  web: { secret: env:S }
apps:
  web:
    environments:
      staging: { to: /srv/staging, fleet: web }
      production:
        to: /srv/production
        windows: [{ deny: "2026-12-24 00:00 - 2026-12-27 00:00", tz: UTC }]
`,
    '/etc/shipkit/shipkit.yml',
  ),
);
const log = silentLogger;
const entry = (action: LedgerEntry['action'], version: string, extra: Partial<LedgerEntry> = {}) =>
  ({ action, app: 'web', version, rollout: null, signer: 'ABC', ...extra }) as LedgerEntry;

test('a name without / or : is an environment; anything else a DEST', () => {
  assert.equal(['staging', 'production-eu', '/srv/x', 'u@h:/x', 's3://b/p', '.', './x'].map(namesEnvironment), [
    true,
    true,
    false,
    false,
    false,
    false,
    false,
  ]);
});

test('unknown apps and environments are usage errors naming the ones there are', () => {
  assert.is(environmentOf(config, 'web', 'production').env.to, '/srv/production');
  assert.throws(
    () => environmentOf(config, 'api', 'staging'),
    (e: Error) => e instanceof UsageError && /it has: web/.test(e.message),
  );
  assert.throws(
    () => environmentOf(config, 'web', 'qa'),
    /No environment qa for web .*; it has: staging, production\./,
  );
});

test("hook-server's URL: the app's fleet_url, else public_url, else listen made reachable", () => {
  assert.is(fleetUrlOf(config, config.apps.get('web')!), 'http://127.0.0.1:9000');
  assert.is(fleetUrlOf(config, { ...config.apps.get('web')!, fleetUrl: 'http://ci:1' }), 'http://ci:1');
});

test('admitPromotion refuses a closed window, --force or --override without an approval, and a release not taken whole', async () => {
  const target = environmentOf(config, 'web', 'production');
  const staging = config.apps.get('web')!.environments.get('staging')!;
  const whole = { version: '1.4', sha256: 'a'.repeat(64), sourceEntries: [entry('publish', '1.4')], certificate: '' };
  const christmas = new Date('2026-12-25T12:00:00Z');
  const open = new Date('2026-12-01T12:00:00Z');
  const refusal = async (run: Promise<unknown>, pattern: RegExp) => {
    const error = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(error, ValidationError);
    assert.match((error as Error).message, pattern);
  };
  await refusal(
    admitPromotion(target, staging, whole, { now: christmas, log }),
    /production is in a deny window .* until 2026-12-27T00:00:00.000Z: .*--override --reason/,
  );
  await refusal(
    admitPromotion(target, staging, whole, { now: christmas, override: 'hotfix', log }),
    /--override into production needs an approval of web 1\.4 into production, and production names no approvers/,
  );
  await refusal(
    admitPromotion(target, staging, whole, { now: open, force: 'hotfix', log }),
    /--force into production needs an approval/,
  );
  const partial = { ...whole, sourceEntries: [entry('publish', '1.4', { rollout: 10 })] };
  await refusal(
    admitPromotion(target, staging, partial, { now: open, log }),
    /1\.4 never reached ROLLOUT 100 in staging's fleet/,
  );
  assert.equal(await admitPromotion(target, staging, whole, { now: open, log }), { note: '' });
  const rolledOn = { ...partial, sourceEntries: [...partial.sourceEntries, entry('rollout', '1.4', { rollout: 100 })] };
  assert.equal((await admitPromotion(target, staging, rolledOn, { now: open, log })).note, '');
});

test('--wait: tried again on a closed gate until it opens, each reason said once; other errors end it at once', async () => {
  const said: string[] = [];
  const waiting = (reason: string) => said.push(reason);
  let tries = 0;
  const opensOnThird = async () => {
    if (++tries < 3) throw new GateClosed('needs 1 approval');
    return 'promoted';
  };
  assert.is(await whileGateClosed(60_000, { pollMs: 1, waiting }, opensOnThird), 'promoted');
  assert.equal([tries, said], [3, ['needs 1 approval']]);
  const refused = new ValidationError('never good in staging');
  let other = 0;
  const error = await whileGateClosed(60_000, { pollMs: 1, waiting }, async () => {
    other++;
    throw refused;
  }).catch((e: unknown) => e);
  assert.equal([error, other], [refused, 1]);
  const once = await whileGateClosed(undefined, { pollMs: 1, waiting }, async () => {
    throw new GateClosed('in a deny window');
  }).catch((e: unknown) => e);
  assert.instance(once, GateClosed, 'without --wait: the refusal itself');
});

test.run();
