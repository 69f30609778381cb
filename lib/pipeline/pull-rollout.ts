// The rollout step in `mode: pull` (docs/fleet.md): what `release rollout` does, as a library call,
// against this hook-server's /fleet routes with the app's `fleet:` secret. The publish step wrote
// ROLLOUT = the first step; this step raises it while the hosts' reports allow. A halt (with
// `rollback: true`, after VERSION names the previous release again) fails the step.
import path from 'node:path';
import { messageOf } from '../core/errors.ts';
import { resolveSecret } from '../core/secrets.ts';
import { parseListen } from '../http/server.ts';
import { rolloutRelease, type RolloutResult } from '../release/rollout/rollout.ts';
import { stageLogger, StepFailure, type BuildContext } from './context.ts';
import type { PullRolloutConfig } from '../config/pipeline.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import type { EnvironmentConfig } from '../config/environments.ts';

/** hook-server as a build reaches it: `fleet_url:`, else `public_url:`, else http:// + `listen:` (0.0.0.0 → 127.0.0.1). */
export function fleetUrlFor(
  config: Pick<ShipkitConfig, 'listen' | 'publicUrl'>,
  rollout: Pick<PullRolloutConfig, 'fleetUrl'>,
): string {
  if (rollout.fleetUrl) return rollout.fleetUrl;
  if (config.publicUrl) return config.publicUrl;
  const { host, port } = parseListen(config.listen);
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** The windows and gates of the environment a repo's branch publishes to (none without one). */
export function environmentRules(
  config: Pick<ShipkitConfig, 'apps'>,
  publish: { name: string; environment?: string },
): Pick<EnvironmentConfig, 'windows' | 'gates'> {
  const env = publish.environment ? config.apps.get(publish.name)?.environments.get(publish.environment) : undefined;
  return { windows: env?.windows ?? [], gates: env?.gates ?? [] };
}

export async function runPullRollout(ctx: BuildContext, rollout: PullRolloutConfig): Promise<RolloutResult> {
  const publish = ctx.repo.publish!;
  const secret = await resolveSecret(rollout.secret, {
    env: process.env,
    baseDir: path.dirname(ctx.config.file),
    where: `fleet.${rollout.name}.secret`,
  }).catch((error) => {
    throw new StepFailure(messageOf(error));
  });
  const fleet = fleetUrlFor(ctx.config, rollout);
  ctx.log.line(
    `rollout: pull, ${rollout.name} to ${publish.to} in steps ${rollout.steps.join(', ')}%, hosts report to ${fleet}`,
  );
  let result: RolloutResult;
  try {
    result = await rolloutRelease({
      name: rollout.name,
      to: publish.to,
      fleet,
      secret,
      steps: rollout.steps,
      waitSec: rollout.waitSec,
      maxFailures: rollout.maxFailures,
      allowMissing: rollout.allowMissing,
      rollback: rollout.rollback,
      key: publish.key,
      passphraseFile: publish.passphraseFile,
      ...environmentRules(ctx.config, publish),
      log: stageLogger(ctx.log),
      signal: ctx.signal,
      print: (line) => ctx.log.line(`rollout: ${line}`),
    });
  } catch (error) {
    throw new StepFailure(`release rollout failed: ${messageOf(error)}`);
  }
  if (result.state === 'done') return result;
  throw new StepFailure(
    result.state === 'rolled_back'
      ? `rollout halted (${result.reason}); rolled back to ${result.rolledBackTo?.version} with SEQ ${result.rolledBackTo?.seq}`
      : `rollout halted at ROLLOUT ${result.percent} (${result.reason}); the next build, or \`release ` +
          `rollout\` by hand, continues from there`,
  );
}
