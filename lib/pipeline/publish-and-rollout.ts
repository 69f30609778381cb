// The pipeline after the build (docs/build.md, build steps `publish` and `rollout`): publish the
// build's `from` folder as a signed launchfit release with `release publish`'s own library
// call, then tell the fleet with server-update's staged rollout, waiting for each host's verdict.
import { mkdtemp, readFile, realpath, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, UsageError, messageOf } from '../core/errors.ts';
import { atomicWriteFile, ensureDir, sha256File } from '../core/fs.ts';
import { resolveSecret } from '../core/secrets.ts';
import { describeRollout, planRollout, runRollout, type RolloutReport, type Wave } from '../fleet/rollout.ts';
import { readSlaveList, type TargetResult } from '../fleet/server-update.ts';
import { DEFAULT_MTIME } from '../release/format/pack-index.ts';
import { packReproducible } from '../release/publish/pack.ts';
import { packFilter } from '../release/publish/pack-filter.ts';
import { publishRelease } from '../release/publish/publish.ts';
import { loadSigningKey } from '../release/format/signature.ts';
import { compareVersions, parseVersionFile, versionProblem } from '../release/format/version-file.ts';
import { stageLogger, StepFailure, type BuildContext, type StepResult } from './context.ts';
import type { RepoConfig, ShipkitConfig } from '../config/shipkit-yml.ts';
import type { PublishConfig, PushRolloutConfig } from '../config/pipeline.ts';
import { runPullRollout } from './pull-rollout.ts';

/** What was published last and whether its rollout finished: DATA/state/REPO/pipeline.json. */
interface PipelineRecord {
  version: string;
  sha256: string;
  file: string;
  published: string;
  rolledOut?: string;
}

const recordFile = (ctx: BuildContext) => path.join(ctx.paths.state, 'pipeline.json');

async function readRecord(ctx: BuildContext): Promise<PipelineRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordFile(ctx), 'utf8')) as PipelineRecord;
  } catch {
    return undefined;
  }
}

async function writeRecord(ctx: BuildContext, record: PipelineRecord): Promise<void> {
  await ensureDir(ctx.paths.state);
  await atomicWriteFile(recordFile(ctx), `${JSON.stringify(record, null, 2)}\n`);
}

/**
 * Checks what the config file alone cannot: the key decrypts with its passphrase, the slave
 * list reads and its hosts fill every wave, the fleet secret resolves. ConfigError → exit 2,
 * before the job starts.
 */
export async function checkPipelineConfig(
  config: ShipkitConfig,
  repo: RepoConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const where = (keyPath: Array<string | number>) => config.doc.locate(keyPath);
  if (repo.publish) {
    try {
      await loadSigningKey(repo.publish.key, repo.publish.passphraseFile);
    } catch (error) {
      throw new ConfigError(`${where([...repo.publish.keyPath, 'key'])}: publish.key: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
  if (repo.rollout?.mode === 'pull') {
    await resolveSecret(repo.rollout.secret, {
      env,
      baseDir: path.dirname(config.file),
      where: `${where([...repo.rollout.keyPath, 'mode'])}: fleet.${repo.rollout.name}.secret`,
    });
  } else if (repo.rollout) {
    const rollout = repo.rollout;
    const targets = await readSlaveList(rollout.list).catch((error) => {
      throw new ConfigError(`${where([...rollout.keyPath, 'list'])}: rollout.list: ${messageOf(error)}`, {
        cause: error,
      });
    });
    try {
      planRollout(targets, { canary: rollout.canary, shares: rollout.shares });
    } catch (error) {
      throw new ConfigError(
        `${where(rollout.keyPath)}: rollout: ${messageOf(error).replace(/--(canary|waves):?/g, '$1:')}`,
        { cause: error },
      );
    }
    if (rollout.secret)
      await resolveSecret(rollout.secret, {
        env,
        baseDir: path.dirname(config.file),
        where: `${where([...rollout.keyPath, 'secret'])}: rollout.secret`,
      });
  }
}

/**
 * The version of this build's release: the pushed tag without a leading `v` when the job is for
 * a tag; else package.json's version (when it is plain numbers: 1.4.0) or 0, plus the build time
 * in milliseconds in hexadecimal, so that every build is higher than the one before and than
 * the tag it follows.
 */
export async function releaseVersion(ctx: Pick<BuildContext, 'ref' | 'paths'>, now = Date.now()): Promise<string> {
  if (ctx.ref?.startsWith('refs/tags/')) {
    const tag = ctx.ref.slice('refs/tags/'.length);
    const version = tag.replace(/^v/, '');
    const problem = versionProblem(version);
    if (problem)
      throw new StepFailure(
        `The tag ${JSON.stringify(tag.slice(0, 60))} is not a launchfit version (it ${problem}); tag ` +
          `releases such as v1.4.0, or build the branch instead.`,
      );
    return version;
  }
  let base = '0';
  try {
    const pkg = JSON.parse(await readFile(path.join(ctx.paths.work, 'package.json'), 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string' && /^\d{1,9}(\.\d{1,9}){0,3}$/.test(pkg.version)) base = pkg.version;
  } catch {
    /* no package.json: base 0 */
  }
  return `${base}.${now.toString(16)}`;
}

/** The folder to publish: `from` inside the work tree, also after following symlinks. */
async function publishFolder(ctx: BuildContext, publish: PublishConfig): Promise<string> {
  const dir = path.join(ctx.paths.work, publish.from);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory())
    throw new StepFailure(`publish.from: ${publish.from} is not a folder in the build; did the compile step write it?`);
  const [real, work] = await Promise.all([realpath(dir), realpath(ctx.paths.work)]);
  // `from: .` is the whole work tree (its .git left out by the pack filter).
  if (real !== work && !real.startsWith(`${work}${path.sep}`))
    throw new StepFailure(
      `publish.from: ${publish.from} leads outside the repository (a symlink); refusing to publish it.`,
    );
  return real;
}

/** The sha256 of the release the update server offers now, when it is this app's. */
async function currentRelease(
  ctx: BuildContext,
  publish: PublishConfig,
): Promise<{ version: string; sha256?: string } | undefined> {
  const remote = /^s3:\/\//.test(publish.to) || /^[^/\s:]+@[^/\s:]+:/.test(publish.to);
  if (remote) {
    const record = await readRecord(ctx);
    return record && { version: record.version, sha256: record.sha256 };
  }
  try {
    const info = parseVersionFile(await readFile(path.join(publish.to, 'VERSION'), 'utf8'));
    if (!info.file.startsWith(`${publish.name}-${publish.platform}-`)) return undefined;
    return { version: info.version, sha256: info.sha256 };
  } catch {
    return undefined;
  }
}

async function packedSha256(dir: string, mtime: number, publish: PublishConfig): Promise<string> {
  const stage = await mkdtemp(path.join(os.tmpdir(), 'shipkit-pack-'));
  try {
    const tarball = path.join(stage, 'release.tar.gz');
    // The same entries release publish packs: .git and `exclude:` left out, `include:` put back.
    await packReproducible(dir, tarball, mtime, packFilter(publish).skip);
    return await sha256File(tarball);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export async function publishStep(ctx: BuildContext): Promise<StepResult> {
  const publish = ctx.repo.publish;
  if (!publish) return { skipped: 'no publish: in shipkit.yml' };
  const dir = await publishFolder(ctx, publish);
  const mtime = ctx.env.SOURCE_DATE_EPOCH ? Number(ctx.env.SOURCE_DATE_EPOCH) : DEFAULT_MTIME;
  const current = await currentRelease(ctx, publish);
  const sha256 = await packedSha256(dir, mtime, publish).catch((error) => {
    throw new StepFailure(`Cannot pack ${publish.from}: ${messageOf(error)}`);
  });
  if (current?.sha256 === sha256) {
    ctx.log.line(
      `publish: nothing new: ${publish.from} packs to the same bytes as the published ${current.version} ` +
        `(sha256 ${sha256.slice(0, 16)}…); not published`,
    );
    ctx.pipeline = { version: current.version, sha256, unchanged: true };
    return { skipped: `nothing new: ${publish.from} is the published ${current.version}` };
  }
  const version = await releaseVersion(ctx);
  if (current && compareVersions(version, current.version) < 0) {
    throw new StepFailure(
      `The version of this build, ${version}, is lower than the published ${current.version}; launchfit ` +
        `hosts refuse to go down. Tag a higher version (or use \`launchfit rollback\` on the hosts to go back on purpose).`,
    );
  }
  let result;
  try {
    result = await publishRelease({
      dir,
      name: publish.name,
      platform: publish.platform,
      version,
      key: publish.key,
      passphraseFile: publish.passphraseFile,
      to: publish.to,
      keep: publish.keep,
      codename: publish.codename,
      expiresDays: publish.expiresDays,
      exclude: publish.exclude,
      include: publish.include,
      mtime,
      log: stageLogger(ctx.log),
      // Pull rollout: only the first step's hosts take it; the rollout step raises ROLLOUT.
      rollout: ctx.repo.rollout?.mode === 'pull' ? ctx.repo.rollout.steps[0] : undefined,
      // The provenance names the repo, ref and commit built (SHIPKIT_REPO, SHIPKIT_REF, SHIPKIT_SHA).
      env: ctx.env,
    });
  } catch (error) {
    throw new StepFailure(`release publish failed: ${messageOf(error)}`);
  }
  const { files, bytes, leftOut } = result.packed;
  ctx.log.line(
    `publish: packed ${files} file${files === 1 ? '' : 's'} (${bytes} byte${bytes === 1 ? '' : 's'}) from ` +
      `${publish.from}; ${leftOut.length ? `left out: ${leftOut.slice(0, 10).join(', ')}${leftOut.length > 10 ? ` and ${leftOut.length - 10} more` : ''}` : 'nothing left out'}`,
  );
  ctx.log.line(
    `publish: published ${result.file} (${result.size} bytes, sha256 ${result.sha256.slice(0, 16)}…) to ${result.to}`,
  );
  ctx.pipeline = { version, sha256: result.sha256, unchanged: false };
  await writeRecord(ctx, { version, sha256: result.sha256, file: result.file, published: new Date().toISOString() });
  return { note: `${result.file}` };
}

/**
 * A wave still running after this long holds launchfit hosts' updates (a health hold is seconds):
 * the next wave prepares meanwhile, once the wave's own hosts are past their download and switch
 * (prepares sent with the wave slowed it on a loaded 2-core machine). Hosts that answer sooner
 * are never sent a prepare.
 */
const PREPARE_AFTER_MS = 1000;

function describeResult(r: TargetResult): string {
  return r.ok
    ? `ok    ${r.target} ${r.status} ${r.ms} ms`
    : `FAIL  ${r.target} ${r.error}${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''} ${r.ms} ms`;
}

export async function rolloutStep(ctx: BuildContext): Promise<StepResult> {
  const rollout = ctx.repo.rollout;
  if (!rollout) return { skipped: 'no rollout: in shipkit.yml' };
  const record = ctx.repo.publish ? await readRecord(ctx) : undefined;
  if (ctx.pipeline?.unchanged && record?.sha256 === ctx.pipeline.sha256 && record.rolledOut === record.sha256) {
    ctx.log.line(
      `rollout: nothing new was published and ${record.version} was rolled out already; the fleet is not told`,
    );
    return { skipped: `nothing new to roll out (${record.version} is out)` };
  }
  if (rollout.mode === 'pull') {
    const result = await runPullRollout(ctx, rollout);
    if (record && ctx.pipeline && record.sha256 === ctx.pipeline.sha256)
      await writeRecord(ctx, { ...record, rolledOut: record.sha256 });
    const last = result.steps.at(-1);
    return {
      note:
        `pull rollout of ${result.version} at ROLLOUT 100 (SEQ ` +
        `${result.seq})${last ? `: ${last.updated}/${last.expected} host(s) updated${last.failed ? `, ${last.failed} failed within the allowance` : ''}` : ''}`,
    };
  }
  const waves = await planWaves(ctx, rollout);
  const secret = rollout.secret
    ? await resolveSecret(rollout.secret, {
        env: process.env,
        baseDir: path.dirname(ctx.config.file),
        where: 'rollout.secret',
      }).catch((error) => {
        throw new StepFailure(messageOf(error));
      })
    : undefined;
  ctx.log.line(
    `rollout: ${rollout.name}${ctx.pipeline ? ` ${ctx.pipeline.version}` : ''} to ` +
      `${waves.reduce((n, w) => n + w.targets.length, 0)} host(s) in ${waves.length} wave(s): ` +
      `${waves.map((w) => `${w.name} ${w.targets.length}`).join(', ')}`,
  );
  const starts: number[] = [];
  const report = await runRollout(waves, {
    repo: rollout.name,
    secret,
    concurrency: rollout.concurrency,
    timeoutMs: rollout.timeoutSec * 1000,
    retries: rollout.retries,
    maxFailures: rollout.maxFailures,
    signal: ctx.signal,
    prepare: { afterMs: PREPARE_AFTER_MS },
    onWaveStart: (wave) => {
      starts.push(Date.now());
      ctx.log.line(`rollout: ${wave.name}: ${wave.targets.length} host(s)`);
    },
    onResult: (r) => ctx.log.line(`rollout:   ${describeResult(r)}`),
  });
  report.waves.forEach((wave, i) => {
    const ms = (starts[i + 1] ?? Date.now()) - starts[i];
    ctx.log.line(
      `rollout: ${wave.name} done in ${ms} ms: ${wave.results.length - wave.failed}/${wave.results.length} host(s) updated`,
    );
  });
  return finishRollout(ctx, report, record);
}

async function planWaves(ctx: BuildContext, rollout: PushRolloutConfig): Promise<Wave[]> {
  try {
    return planRollout(await readSlaveList(rollout.list), { canary: rollout.canary, shares: rollout.shares });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError)
      throw new StepFailure(`rollout: ${messageOf(error)}`);
    throw error;
  }
}

async function finishRollout(
  ctx: BuildContext,
  report: RolloutReport,
  record: PipelineRecord | undefined,
): Promise<StepResult> {
  if (report.interrupted)
    ctx.log.line(
      `rollout: interrupted (${String(ctx.signal?.reason ?? 'stopped')}); later waves not told to update; ` +
        `${report.notContacted.length} host(s): ${report.notContacted.join(' ')}`,
    );
  if (report.halted || report.interrupted) throw new StepFailure(describeRollout(report));
  const results = report.waves.flatMap((w) => w.results);
  const failed = results.filter((r) => !r.ok).length;
  if (record && ctx.pipeline && record.sha256 === ctx.pipeline.sha256)
    await writeRecord(ctx, { ...record, rolledOut: record.sha256 });
  return {
    note:
      `${report.waves.length} wave(s), ${results.length - failed}/${results.length} host(s) ` +
      `updated${failed ? `, ${failed} failed within the allowance` : ''}`,
  };
}
