#!/usr/bin/env -S node --import=data:text/javascript,const{realpathSync:r}=await/**/import(`node:fs`),{pathToFileURL:u}=await/**/import(`node:url`);await/**/import(new/**/URL(`../node_modules/tsx/dist/loader.mjs`,u(r(process.argv[1]))))
// release REPO --tag TAG     run the repo's release script in the checked-out tag
// release publish DIR ...    pack, sign and publish an app release for launchfit
// release rollback APP --to DEST    sign a newer-SEQ VERSION naming the previous release
// release rollout APP --to DEST --fleet URL   raise ROLLOUT step by step while hosts report well
// release keys init|rotate|revoke|list   the release key: certify-only primary, signing subkeys
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runCli, type Args, type CliSpec, type CommandSpec } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import { shownEscaped } from '../lib/core/escape.ts';
import { report, validateRef } from '../lib/pipeline/job.ts';
import { abortOnSignals } from '../lib/core/signals.ts';
import { newJobId, validateJobId } from '../lib/jobs/job-id.ts';
import type { Logger } from '../lib/core/log.ts';
import { validateName } from '../lib/core/names.ts';
import { findConfigFile, getRepo, loadShipkitConfig, publishedTo } from '../lib/config/shipkit-yml.ts';
import { parseRolloutPercent, validateVersion } from '../lib/release/format/version-file.ts';
import type { History } from '../lib/release/dest/history.ts';
import { parseDuration } from '../lib/config/preview-values.ts';

const publishCommand: CommandSpec = {
  usage: `Usage: release publish DIR --name APP --platform PLATFORM --version V --key SECRET_KEY.asc
                       [--passphrase-file F] [--keys keys.asc] --to DEST [--keep N]
                       [--codename NAME] [--expires DAYS] [--exclude PATTERN]... [--include PATTERN]...
                       [--json]

Packs DIR into APP-PLATFORM-V.tar.gz (reproducible: sorted entries, fixed mtime and owner),
signs it (detached binary OpenPGP signature, as gpg --detach-sign makes), writes VERSION with
SHA256, SIZE and EXPIRES and signs it as VERSION.sig, and publishes them to DEST: the tarball
and its .sig first, then the public certificate as keys.asc (and the same as pubkey.asc, for
older hosts), VERSION.sig and VERSION last, each by temp file + rename. Hosts trust the
certificate only against a pinned primary fingerprint. DEST is locked from reading it to
writing it: a second publish, rollout or rollback meanwhile exits 1 and writes nothing.

Options:
  --name APP               app name (letters, digits, . _ -)
  --platform PLATFORM      e.g. gnu-linux
  --version V              dot-separated hexadecimal, e.g. 1.23.42b; must not go down
  --key FILE               armored OpenPGP secret key
  --passphrase-file FILE   passphrase for the key (first line)
  --keys FILE              the public certificate to publish as keys.asc (default: keys.asc
                           beside --key, as \`release keys\` writes it; else the key's public part)
  --to DEST                a local folder, s3://bucket/prefix or user@host:path
  --keep N                 releases kept on DEST, the current one always (default 5)
  --codename NAME          written as RELEASE NAME
  --expires DAYS           VERSION expires after DAYS (default 30; 0 = never)
  --seq N                  SEQ to write in VERSION (default: one more than the VERSION at DEST,
                           whose signature must verify with this key)
  --source-repo REPO       source repository (URL or owner/name) for the provenance
                           APP-PLATFORM-V.intoto.jsonl (default $SHIPKIT_REPO; without
                           one no provenance is written)
  --source-ref REF         the ref built (default refs/tags/$SHIPKIT_TAG, else $SHIPKIT_REF)
  --source-commit SHA      the commit built (default $SHIPKIT_SHA)
  --builder-id URI         the builder named in the provenance
  --rollout P              write ROLLOUT P: only P percent of hosts take it now (0 < P <= 100;
                           default all); \`release rollout\` raises it step by step
  --exclude PATTERN        leave out what PATTERN names (repeatable): a name at any depth
                           (node_modules, *.map) or a path from DIR (build/cache); * and ?
                           within a name, ** across folders. .git is always left out, unless
                           --include .git. What was packed and left out is printed
  --include PATTERN        put back what .git or an --exclude left out (repeatable)
  --state DIR              where the longest ledger read and written at each DEST is kept: a
                           shorter or forked ledger at DEST is refused (default
                           $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --no-delta               write no manifest and no patches: hosts download the whole tarball
  --patches N              patches from the last N releases at DEST (default 3; 0 = none,
                           the manifest alone). A patch needs zstd here and on the host
  --json                   print the result as JSON

Exit codes: 0 published, 1 failed (also: DEST locked by another writer), 2 usage or
configuration error.`,
  flags: {
    name: { type: 'string' },
    platform: { type: 'string' },
    version: { type: 'string' },
    key: { type: 'string' },
    'passphrase-file': { type: 'string' },
    keys: { type: 'string' },
    to: { type: 'string' },
    codename: { type: 'string' },
    json: { type: 'boolean' },
    keep: { type: 'integer', min: 1, max: 10_000 },
    expires: { type: 'integer', min: 0, max: 36_500 },
    seq: { type: 'integer', min: 1, max: 999_999_999_999_999 },
    'source-repo': { type: 'string' },
    'source-ref': { type: 'string' },
    'source-commit': { type: 'string' },
    'builder-id': { type: 'string' },
    rollout: { type: 'string' },
    delta: { type: 'boolean', default: true },
    patches: { type: 'integer', min: 0, max: 20 },
    exclude: { type: 'string', repeatable: true },
    include: { type: 'string', repeatable: true },
    state: { type: 'string' },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

const rollbackCommand: CommandSpec = {
  usage: `Usage: release rollback APP --to DEST [--version V] --key SECRET_KEY.asc [--passphrase-file F]
                        [--keys keys.asc] [--expires DAYS] [--seq N] [--json]
       release rollback APP --to DEST --version V --key SECRET_KEY.asc --fleet URL
                        --fleet-secret file:PATH|env:NAME --steps 1,10,50,100 [--wait SECONDS]
                        [--max-failures N|P%] [--allow-missing N|P%] [--poll SECONDS] [...]

Goes back on purpose: writes and signs a VERSION with the next SEQ that names the newest release
of APP still at DEST older than the current one (or V). Hosts that have seen SEQ take it although
its version is lower (without SEQ they refuse a lower version). The release's tarball and .sig
must still be at DEST and verify; with a ledger at DEST it must be in the ledger, not marked bad
there (halted, or rolled back from), signed by a subkey not revoked since, with the digest the
ledger gives; otherwise exit 2 and nothing is written. An entry is appended to the ledger, then
VERSION and VERSION.sig change, each by temp file + rename, so that VERSION.sig always holds a signature of
the VERSION beside it, even if the command is killed half-way.

With --steps, the rollback goes through a pull rollout's steps like any release: the new VERSION
has ROLLOUT = the first step, then ROLLOUT is raised step by step exactly as \`release rollout\`
does (its --wait, --max-failures, --allow-missing; a ledger entry per step), and a halt exits 1.
Run again with the same --version after a kill, it continues from the ROLLOUT at DEST.

Options:
  --to DEST                a local folder, s3://bucket/prefix or user@host:path
  --version V              the release to go back to (default: the previous one at DEST; on a
                           terminal, a picker of the ledger's releases)
  --list                   print the releases it can go back to (with --json: as JSON); writes nothing
  --state DIR              where the longest ledger read and written at each DEST is kept: a
                           shorter or forked ledger at DEST is refused (default
                           $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --fleet URL              hook-server's URL (with --fleet-secret): --list and the picker mark the
                           releases every reporting host still holds (going back downloads nothing);
                           a rollback is told to it, and recorded in its audit trail
  --fleet-secret SECRET    the app's fleet secret (file:PATH or env:NAME)
  --key FILE               armored OpenPGP secret key (the one release publish uses)
  --passphrase-file FILE   passphrase for the key (first line)
  --keys FILE              the public certificate (default: keys.asc beside --key)
  --expires DAYS           the new VERSION expires after DAYS (default 30; 0 = never)
  --seq N                  SEQ to write (default: one more than the VERSION at DEST)
  --steps P,P,...          roll back in steps: growing percents ending at 100; needs --fleet
                           and --fleet-secret, whose hosts' reports each step waits for
  --wait SECONDS           how long a step waits for its hosts' reports (default 600)
  --max-failures N|P%      failed hosts a step may have (default 0)
  --allow-missing N|P%     hosts that may still not have reported after --wait (default 0)
  --poll SECONDS           time between two looks at the fleet (default 2)
  --json                   print the result as JSON

Exit codes: 0 rolled back (with --steps: to ROLLOUT 100), 1 failed or halted, 2 usage error,
nothing to roll back to, or a version the ledger refuses.`,
  flags: {
    to: { type: 'string' },
    steps: { type: 'string' },
    wait: { type: 'seconds' },
    'max-failures': { type: 'string' },
    'allow-missing': { type: 'string' },
    poll: { type: 'seconds' },
    version: { type: 'string' },
    key: { type: 'string' },
    'passphrase-file': { type: 'string' },
    keys: { type: 'string' },
    json: { type: 'boolean' },
    expires: { type: 'integer', min: 0, max: 36_500 },
    seq: { type: 'integer', min: 1, max: 999_999_999_999_999 },
    list: { type: 'boolean' },
    fleet: { type: 'string' },
    'fleet-secret': { type: 'string' },
    state: { type: 'string' },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

const promoteCommand: CommandSpec = {
  usage: `Usage: release promote APP VERSION --from DEST --to DEST --key SECRET_KEY.asc [--passphrase-file F]
                       [--from-env NAME] [--to-env NAME] [--platform P] [--force --reason TEXT]
                       [--keys keys.asc] [--expires DAYS] [--state DIR] [--copy] [--json]
       release promote APP VERSION --from ENV --to ENV [--config FILE] [--key SECRET_KEY.asc]
                       [--force --reason TEXT] [--override --reason TEXT] ...

Promotes a release from one environment's DEST (staging) to another's (production): the same
tarball, byte for byte, with its .sig, its manifest (and pack index) and its provenance. Nothing
is packed or built again: the tarball is read once, its sha256 checked while it is copied against
the source's signed record (the ledger entry, else VERSION). VERSION is then signed into the target
with the target's next SEQ, under the target's publish lock; the target's ledger gets an entry
\`action: promote\` with from_env and from_dest, the source's a \`promoted\` one. Patches are not
carried (they were made against the source's history): hosts at the target take the files way or
the tarball. Between two folders on one filesystem the tarball is hard-linked, not copied (it is
never written again; --copy copies it); see docs/environments.md.

Refused with exit 2, nothing written at the target: VERSION never published at the source; a
VERSION of another APP; a tarball, manifest or provenance whose bytes changed since they were
signed; a release not good in the source: not and never its current release, or halted or rolled
back there. --force --reason TEXT overrides that last rule only, and is recorded in the ledger.

With environments (names, not DESTs: apps: APP: environments: in shipkit.yml), the DESTs and the
key come from there and the target's rules apply too, each refused with exit 2 before anything is
written: its approvals (shipkit approve; an approval counts for this version, these bytes and
this environment only), its deny windows (--override --reason TEXT promotes inside one), and
with a fleet at the source, ROLLOUT 100 reached there. --force and --override each need an
approval as well. The promote is recorded in hook-server's audit trail. With --wait, a promote
that waits for approvals or for a deny window to end asks again every 10 s until it may go (or
the time is up: exit 2); the approvers are told once, even when it is killed and run again.

Options:
  --from DEST|ENV          the source: a local folder, s3://bucket/prefix or user@host:path, or
                           an environment of APP in shipkit.yml
  --to DEST|ENV            the target, the same kinds
  --config FILE            shipkit.yml with the apps: block (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                           ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --override               promote inside the target's deny window (needs --reason and an approval)
  --from-env NAME          the source environment's name, for the ledgers (default: its DEST)
  --to-env NAME            the target environment's name, for the ledgers (default: its DEST)
  --platform P             the platform, when the source holds VERSION for several
  --key FILE               armored OpenPGP secret key (the one release publish uses)
  --passphrase-file FILE   passphrase for the key (first line)
  --keys FILE              the public certificate (default: keys.asc beside --key)
  --force                  promote although the release is not good in the source (needs --reason)
  --reason TEXT            why, recorded in the target's ledger entry
  --expires DAYS           the new VERSION expires after DAYS (default 30; 0 = never)
  --copy                   copy the tarball even where it could be hard-linked (a folder target
                           on the source's filesystem), so that the two share no file (an
                           environment's \`copy: true\` asks the same for every promote into it)
  --wait DURATION          with environments: wait up to DURATION (30s, 45m, 24h) for approvals or
                           the end of a deny window instead of exit 2 at once
  --state DIR              where the longest ledger read at each DEST is kept (see release rollback)
  --json                   print the result as JSON

Exit codes: 0 promoted, 1 failed (another publish, rollout, rollback or promote holds a DEST's
lock: run it again), 2 usage error or refused by a rule above.`,
  flags: {
    from: { type: 'string' },
    to: { type: 'string' },
    'from-env': { type: 'string' },
    'to-env': { type: 'string' },
    platform: { type: 'string' },
    key: { type: 'string' },
    'passphrase-file': { type: 'string' },
    keys: { type: 'string' },
    force: { type: 'boolean' },
    override: { type: 'boolean' },
    copy: { type: 'boolean' },
    config: { type: 'string' },
    reason: { type: 'string' },
    expires: { type: 'integer', min: 0, max: 36_500 },
    wait: { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 2,
  maxPositionals: 2,
};

const historyCommand: CommandSpec = {
  usage: `Usage: release history APP --from DEST [--keys keys.asc] [--state DIR] [--fleet URL --fleet-secret SECRET]
                       [--json]
       release history APP [--config FILE] [--keys keys.asc] [--state DIR] [--json]

The releases of APP that the ledger at DEST (ledger.jsonl, signed as ledger.jsonl.sig) records,
newest first: version, state (current, previous, halted, rolled back), ROLLOUT, when, who, the
source repo, ref and commit. The ledger's chain and signature are checked first: a removed,
reordered, edited or forged entry, or a ledger last signed by a revoked subkey, is refused
(exit 2) with the entry's number. The longest ledger read at DEST is remembered (its length and
head's sha256, in --state): a shorter one (an older ledger put back) or one that forks from it is
refused (exit 2). So is, without --keys, a keys.asc whose primary is not the one pinned at the
first read (the fingerprint trusted then is printed on stderr).

Without --from, the environments of APP in shipkit.yml (apps: APP: environments:, --config FILE)
are read in turn: each one's current release, then each version's path through them (published
in staging, promoted from staging to production, its state in each).

Options:
  --from DEST    a local folder, s3://bucket/prefix or user@host:path
  --config FILE  shipkit.yml with the apps: block, when there is no --from
  --keys FILE    the release certificate to trust (keys.asc from \`release keys\`); default
                 DEST's keys.asc, whose primary must be the one pinned at the first read
  --state DIR    where what was read at each DEST is remembered (default
                 $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --fleet URL    hook-server's URL: each release shows how many hosts run it, how many of them
                 verified the ledger's sha256, and whether every host still holds it
  --fleet-secret SECRET
                 the app's fleet secret (file:PATH or env:NAME), to sign the request
  --json         print the history as JSON

Exit codes: 0 shown, 1 failed, 2 usage error, no ledger or a ledger that does not verify.`,
  flags: {
    config: { type: 'string' },
    from: { type: 'string' },
    keys: { type: 'string' },
    fleet: { type: 'string' },
    'fleet-secret': { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

const diffCommand: CommandSpec = {
  usage: `Usage: release diff APP V1 V2 [--from DEST] [--config FILE] [--keys keys.asc] [--repo DIR]
                         [--platform P] [--state DIR] [--json]

What changed from release V1 to release V2 of APP, both published at DEST: the commits between
them, the files added, removed and changed (by sha256, mode, type or link target) with their
sizes, and the dependencies in their package-lock.json added, removed and changed.

Everything is verified before it is read: the ledger at DEST (chain and signature, as
\`release history\` checks it) must have a publish entry for V1 and for V2; each tarball must
have the sha256 its entry records and a .sig by the release key; its provenance
(APP-PLATFORM-V.intoto.jsonl) the digest its entry records. The tarballs are streamed, never
extracted. The commits are the source commits of the two releases' provenance, listed
with \`git log\` in --repo DIR, else in the current folder when it is a checkout that has both;
otherwise both commits are printed and --repo is named.

Options:
  --from DEST      a local folder, s3://bucket/prefix or user@host:path (where \`release publish
                   --to\` put them); default the publish.to of the repo in shipkit.yml whose
                   publish.name is APP
  --config FILE    shipkit.yml, for that default (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                   ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --keys FILE      the release certificate to trust (default DEST's keys.asc, whose primary must
                   be the one pinned at the first read, as \`release history\` checks it)
  --state DIR      what was read at each DEST (default $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --repo DIR       a git checkout of the source that has both releases' commits
  --platform P     the platform's tarballs, when DEST holds V1 or V2 for several
  --json           print the diff as one JSON object

Exit codes: 0 shown, 1 failed, 2 usage error, a version the ledger does not have, a tarball
pruned by --keep or that does not verify, or a ledger that does not verify (nothing compared).`,
  flags: {
    from: { type: 'string' },
    config: { type: 'string' },
    keys: { type: 'string' },
    repo: { type: 'string' },
    platform: { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 3,
  maxPositionals: 3,
};

const rolloutCommand: CommandSpec = {
  usage: `Usage: release rollout APP --to DEST --fleet URL --fleet-secret file:PATH|env:NAME
                       --key SECRET_KEY.asc [--passphrase-file F] [--keys keys.asc]
                       [--steps 1,10,50,100] [--wait SECONDS] [--max-failures N|P%]
                       [--allow-missing N|P%] [--rollback] [--poll SECONDS] [--json]
       release rollout APP --env ENV [--config FILE] [--override --reason TEXT] [...]

Rolls the release that VERSION at DEST names out to a pulling fleet, step by step (docs/fleet.md).
For each step it signs VERSION with the next SEQ and ROLLOUT = the step (hosts whose bucket,
sha256(host id + " " + version), is below it take the release), tells hook-server
(POST /fleet/rollouts), then reads the hosts' reports (GET /fleet/APP) until every host
expected in the step has reported this version, or --wait runs out. It prints each step's
counts: expected, reported, updated, failed, pending.

It halts (exit 1) when more hosts failed than --max-failures (failed, rolled back, or refused
the release), or when after --wait more hosts are pending than --allow-missing. With
--rollback a halt also signs a VERSION with a higher SEQ naming the previous release at DEST,
so every host that took this one goes back. Killed at any moment, run it again: it reads
VERSION at DEST and continues from its ROLLOUT. Hosts not yet in keep their release.

With --env, the environment of APP in shipkit.yml (apps: APP: environments:) gives DEST, hook-
server (fleet_url, else public_url, else listen), the fleet secret (its fleet: app), the key,
the steps and rules (its rollout:; flags given win), and two more rules per step
(docs/environments.md): a step due inside a deny window (or outside every allow window) is held,
and goes on when the window opens (--override --reason TEXT signs it anyway); after a step's hosts
reported, its metric gates must hold for their for: (a value over max halts and rolls back; a
Prometheus that cannot be read holds, never passes, and halts at --wait).

Options:
  --env ENV                an environment of APP in shipkit.yml (with --config FILE)
  --to DEST                a local folder, s3://bucket/prefix or user@host:path
  --fleet URL              hook-server, e.g. http://ci.example.com:8080
  --fleet-secret SECRET    the app's fleet secret (fleet: in hook-server's shipkit.yml):
                           file:PATH (first line) or env:NAME
  --steps P,P,...          growing percents ending at 100 (default 1,10,50,100)
  --wait SECONDS           how long a step waits for its hosts' reports (default 600)
  --max-failures N|P%      failed hosts a step may have: a number or a percent of the
                           step's hosts (default 0)
  --allow-missing N|P%     hosts that may still not have reported after --wait (default 0)
  --rollback               after a halt, send every host back to the previous release
  --key FILE               armored OpenPGP secret key (the one release publish uses)
  --passphrase-file FILE   passphrase for the key (first line)
  --keys FILE              the public certificate (default: keys.asc beside --key)
  --poll SECONDS           time between two looks at the fleet (default 2)
  --state DIR              where the longest ledger read and written at each DEST is kept: a
                           shorter or forked ledger at DEST is refused (default
                           $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit)
  --json                   print the result as JSON at the end

Exit codes: 0 rolled out to 100%, 1 halted (also after --rollback) or failed, 2 usage,
configuration or verification error (nothing written).`,
  flags: {
    env: { type: 'string' },
    config: { type: 'string' },
    override: { type: 'boolean' },
    reason: { type: 'string' },
    to: { type: 'string' },
    fleet: { type: 'string' },
    'fleet-secret': { type: 'string' },
    steps: { type: 'string' },
    wait: { type: 'seconds' },
    'max-failures': { type: 'string' },
    'allow-missing': { type: 'string' },
    rollback: { type: 'boolean' },
    key: { type: 'string' },
    'passphrase-file': { type: 'string' },
    keys: { type: 'string' },
    poll: { type: 'seconds' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 1,
  maxPositionals: 1,
};

const releaseCliSpec: CliSpec = {
  name: 'release',
  usage: `Usage: release REPO --tag TAG [--config FILE] [--job-id ID] [--json]
       release publish DIR --name APP --platform PLATFORM --version V --key SECRET_KEY.asc
               [--passphrase-file F] --to DEST [--keep N] [--codename NAME] [--expires DAYS] [--seq N]
               [--rollout P]
       release rollback APP --to DEST [--version V] --key SECRET_KEY.asc [--passphrase-file F]
               [--steps 1,10,50,100 --fleet URL --fleet-secret file:PATH [--wait S] [--max-failures N|P%]]
       release rollout APP --to DEST --fleet URL --fleet-secret file:PATH --key SECRET_KEY.asc
               [--steps 1,10,50,100] [--wait SECONDS] [--max-failures N|P%] [--rollback]
       release promote APP VERSION --from DEST --to DEST --key SECRET_KEY.asc [--from-env NAME]
               [--to-env NAME] [--force --reason TEXT]
       release history APP --from DEST [--keys keys.asc] [--json]
       release diff APP V1 V2 [--from DEST] [--keys keys.asc] [--repo DIR] [--json]

release REPO --tag TAG
  Checks out TAG in DATA/repos/REPO and runs the repo's release script (\`release:\` in
  shipkit.yml, default release.sh) with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA in its
  environment. Output goes to DATA/logs/REPO/logs.txt (see \`logs REPO\`); the script's exit
  code is the release's. A missing or non-executable script fails with exit 1.

  --config FILE   shipkit.yml (default: $SHIPKIT_CONFIG, ./shipkit.yml,
                  ./.shipkit/shipkit.yml, /etc/shipkit/shipkit.yml)
  --tag TAG       the tag to release, e.g. v1.4.0 (refs/tags/v1.4.0 also accepted)
  --job-id ID     the job's id in the log (default: a new one)
  --json          print the result as JSON on stdout

release publish DIR ...
  Packs DIR into APP-PLATFORM-V.tar.gz, signs it, uploads tarball and .sig to DEST and writes
  VERSION last (see \`release publish --help\`). VERSION carries SEQ, one more than DEST's.

release rollback APP --to DEST ...
  Signs a VERSION with the next SEQ naming the previous release, and hosts go back
  (see \`release rollback --help\`).

release promote APP VERSION --from DEST --to DEST ...
  Copies the same tarball from one environment's DEST to another's, sha256 checked, and signs it
  into the target's VERSION (see \`release promote --help\`).

release history APP --from DEST [--json]
  The releases the signed ledger at DEST records, newest first, with their state (see
  \`release history --help\`).

release diff APP V1 V2 [--from DEST] [--repo DIR] [--json]
  What changed between two releases at DEST, verified first: commits, files and sizes,
  package-lock dependencies (see \`release diff --help\`).

release rollout APP --to DEST --fleet URL ...
  Raises ROLLOUT step by step while the hosts' reports to hook-server show no more failures
  than allowed; halts (exit 1), with --rollback back to the previous release
  (see \`release rollout --help\`).

release keys init|rotate|revoke|list ...
  The release key: a certify-only primary kept offline and signing subkeys that expire, rotated
  and revoked without touching any host (see \`release keys --help\`).

Examples:
  release octo/site --tag v1.4.0
  release publish build/ --name my-app --platform gnu-linux --version 1.23.42b \\
    --key release-key.asc --to /srv/app-updates
`,
  flags: {
    config: { type: 'string' },
    tag: { type: 'string' },
    'job-id': { type: 'string' },
    json: { type: 'boolean' },
  },
  minPositionals: 1,
  maxPositionals: 1,
  needs: ['bash', 'git'],
  commands: {
    publish: publishCommand,
    rollback: rollbackCommand,
    rollout: rolloutCommand,
    promote: promoteCommand,
    history: historyCommand,
    diff: diffCommand,
  },
};

const KEYS_FOLDER = `DIR holds primary.asc (the whole secret key: keep the folder offline), signing.asc (the
subkeys' secrets only: give it to \`release publish --key\` on the build machine) and keys.asc
(the public certificate, published beside VERSION). Hosts pin the primary's fingerprint
(updates.gpg.key) and need no change when a subkey is added or revoked.`;
const passphraseFlag = { 'passphrase-file': { type: 'string' as const } };
const expiresFlag = { expires: { type: 'integer' as const, min: 1, max: 36_500 } };

const keysCliSpec: CliSpec = {
  name: 'release keys',
  usage: `Usage: release keys init --out DIR [--uid "NAME <EMAIL>"] [--passphrase-file F] [--expires DAYS] [--json]
       release keys rotate --dir DIR [--to DEST] [--passphrase-file F] [--expires DAYS] [--json]
       release keys revoke SUBKEY_FINGERPRINT --dir DIR [--to DEST] [--reason compromised|superseded]
                           [--passphrase-file F] [--json]
       release keys list --dir DIR [--json]

${KEYS_FOLDER}

  init     a certify-only primary and a signing subkey that expires after --expires days
           (default 365); --passphrase-file protects both secrets (recommended)
  rotate   a new signing subkey; \`release publish\` signs with the newest valid one
  revoke   revoke a subkey; hosts refuse every signature it made, whatever its date, and
           remember the revocation. Publish again (with another subkey) after revoking.
  list     the subkeys of DIR/keys.asc: created, expires, revoked, valid

  With --to DEST (rotate, revoke), under DEST's lock, the new keys.asc (and pubkey.asc) is
  placed at DEST and the change appended to its ledger as a \`keys\` entry signed by a valid
  subkey, in an order that leaves the ledger verifiable at every moment. DEST's VERSION and
  ledger must verify with DIR's key first; otherwise exit 2 and nothing is written, not even DIR.

Examples:
  release keys init --out /media/offline/release-key --passphrase-file pass.txt
  release keys rotate --dir /media/offline/release-key --to /srv/app-updates --passphrase-file pass.txt
  release keys revoke 0123…CDEF --dir /media/offline/release-key --reason compromised --passphrase-file pass.txt
`,
  flags: { json: { type: 'boolean' } },
  commands: {
    init: {
      usage: `Usage: release keys init --out DIR [--uid "NAME <EMAIL>"] [--passphrase-file F] [--expires DAYS] [--json]\n\nMakes a new release key in DIR (which must not hold one). ${KEYS_FOLDER}\n`,
      flags: {
        out: { type: 'string' },
        uid: { type: 'string' },
        json: { type: 'boolean' },
        ...passphraseFlag,
        ...expiresFlag,
      },
      maxPositionals: 0,
    },
    rotate: {
      usage:
        "Usage: release keys rotate --dir DIR [--to DEST] [--passphrase-file F] [--expires DAYS] [--json]\n\nAdds a new signing subkey (default expiry 365 days) and rewrites DIR's three files; publish with the new signing.asc and keys.asc.\nWith --to DEST: the new keys.asc is placed at DEST first, then a ledger entry (action keys) signed\nby the new subkey is appended there. DEST's VERSION and ledger must verify first (exit 2 otherwise,\nnothing written).\n",
      flags: {
        dir: { type: 'string' },
        to: { type: 'string' },
        json: { type: 'boolean' },
        ...passphraseFlag,
        ...expiresFlag,
      },
      maxPositionals: 0,
    },
    revoke: {
      usage:
        'Usage: release keys revoke SUBKEY_FINGERPRINT --dir DIR [--to DEST] [--reason compromised|superseded] [--passphrase-file F] [--json]\n\nRevokes one signing subkey. Hosts refuse every signature it made (whatever the reason or the\nsignature\'s date) and remember the revocation. No --reason means "no reason", treated like compromised.\nWith --to DEST: a ledger entry (action keys) signed by another valid subkey is appended at DEST\nfirst, then the keys.asc that revokes it is placed there. Another valid subkey must exist\n(`release keys rotate` first), and DEST\'s VERSION and ledger must verify (exit 2 otherwise).\n',
      flags: {
        dir: { type: 'string' },
        to: { type: 'string' },
        reason: { type: 'string' },
        json: { type: 'boolean' },
        ...passphraseFlag,
      },
      minPositionals: 1,
      maxPositionals: 1,
    },
    list: {
      usage: 'Usage: release keys list --dir DIR [--json]\n\nShows the subkeys in DIR/keys.asc.\n',
      flags: { dir: { type: 'string' }, json: { type: 'boolean' } },
      maxPositionals: 0,
    },
  },
};

/** For the kill -9 tests: SHIPKIT_TEST_PAUSE_AT=STEP stops at that write (e.g. VERSION:temp) until killed. */
function pauseStep(): ((name: string) => Promise<void>) | undefined {
  const pauseAt = process.env.SHIPKIT_TEST_PAUSE_AT;
  if (!pauseAt) return undefined;
  return async (name: string) => {
    if (name === pauseAt) {
      process.stderr.write(`paused at ${name}\n`);
      await new Promise(() => setInterval(() => {}, 60_000));
    }
  };
}

async function keysMain(args: Args, log: Logger): Promise<number> {
  const keys = await import('../lib/release/keys/release-keys.ts');
  const dirFlag = args.command === 'init' ? 'out' : 'dir';
  if (!args.command)
    throw new UsageError(
      'Missing the action: release keys init, rotate, revoke or list. Run `release keys --help` for usage.',
    );
  if (typeof args[dirFlag] !== 'string' || !args[dirFlag])
    throw new UsageError(`Missing --${dirFlag} DIR. Run \`release keys ${args.command} --help\` for usage.`);
  const common = { dir: String(args[dirFlag]), passphraseFile: args['passphrase-file'] };
  if (args.to !== undefined && (typeof args.to !== 'string' || !args.to))
    throw new UsageError(`--to needs DEST. Run \`release keys ${args.command} --help\` for usage.`);
  const change = { ...common, to: args.to, log, step: pauseStep() };
  const result =
    args.command === 'init'
      ? await keys.initReleaseKeys({ ...common, userId: args.uid, expiresDays: args.expires })
      : args.command === 'rotate'
        ? await keys.rotateReleaseKeys({ ...change, expiresDays: args.expires })
        : args.command === 'revoke'
          ? await keys.revokeReleaseSubkey({ ...change, subkey: String(args._[0]), reason: args.reason })
          : await keys.listReleaseKeys(common);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const lines = [`primary ${result.primary} (certify only; hosts pin this: updates.gpg.key)`];
  for (const s of result.subkeys) {
    const state = s.revoked ? `revoked (${s.revoked})` : s.valid ? 'valid' : 'not valid now';
    lines.push(
      `  subkey ${s.fingerprint}  created ${s.created.slice(0, 10)}  expires ${s.expires?.slice(0, 10) ?? 'never'}  ${state}${s.fingerprint === result.subkey ? `  <- ${args.command === 'revoke' ? 'revoked now' : 'new'}` : ''}`,
    );
  }
  if (result.dest)
    lines.push(
      `Wrote ${result.dir}/keys.asc and placed it at ${result.dest.to}; ledger entry ${result.dest.entry.n}: ${result.dest.entry.note}`,
    );
  else if (args.command !== 'list')
    lines.push(`Wrote ${result.dir}/keys.asc; publish it (release publish takes it from beside signing.asc).`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (result.dest?.warning) process.stderr.write(`warning: ${result.dest.warning}\n`);
  return 0;
}

async function releaseMain(args: Args, log: Logger): Promise<number> {
  const name = String(args._[0]);
  if (args.tag === undefined) throw new UsageError('Missing --tag TAG: which tag to release, e.g. --tag v1.4.0.');
  const tag = validateRef(String(args.tag).replace(/^refs\/tags\//, ''), 'tag');
  const id = args['job-id'] !== undefined ? validateJobId(args['job-id']) : newJobId();
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const repo = getRepo(config, name);
  const { runRelease } = await import('../lib/pipeline/release.ts');
  const controller = abortOnSignals();
  // hook-server and workers always name the job: without --job-id, someone typed it.
  const beforeStart =
    args['job-id'] === undefined
      ? async () => {
          const { recordByCommand } = await import('../lib/audit/trail.ts');
          const detail = { job: id, tag };
          await recordByCommand(config, 'release', { action: 'release.manual', subject: repo.name, detail }, log);
        }
      : undefined;
  return report(await runRelease({ config, repo, tag, id, log, signal: controller.signal, beforeStart }), {
    json: args.json,
    log,
    stdout: process.stdout,
  });
}

async function publishMain(args: Args, log: Logger): Promise<number> {
  // Values that were given are checked first, so a bad name is reported even when more is missing.
  if (typeof args.name === 'string' && args.name) validateName(args.name, 'app name (--name)');
  if (typeof args.platform === 'string' && args.platform) validateName(args.platform, 'platform (--platform)');
  if (typeof args.version === 'string' && args.version) validateVersion(args.version, '--version');
  const rollout = args.rollout === undefined ? undefined : parseRolloutPercent(String(args.rollout), '--rollout');
  for (const flag of ['name', 'platform', 'version', 'key', 'to']) {
    if (typeof args[flag] !== 'string' || args[flag] === '')
      throw new UsageError(`Missing --${flag}. Run \`release publish --help\` for usage.`);
  }
  const { publishRelease } = await import('../lib/release/publish/publish.ts');
  const result = await publishRelease({
    dir: String(args._[0]),
    name: args.name,
    platform: args.platform,
    version: args.version,
    key: args.key,
    passphraseFile: args['passphrase-file'],
    keys: args.keys,
    to: args.to,
    keep: args.keep,
    codename: args.codename,
    expiresDays: args.expires,
    seq: args.seq,
    log,
    source: {
      repo: args['source-repo'],
      ref: args['source-ref'],
      commit: args['source-commit'],
      builderId: args['builder-id'],
    },
    rollout,
    delta: args.delta,
    patches: args.patches,
    exclude: args.exclude,
    include: args.include,
    state: (await ledgerState(args)).state,
  });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else
    process.stdout.write(
      `${packedText(String(args._[0]), result.packed)}\nPublished ${result.file} (${result.size} bytes, sha256 ${result.sha256}) to ${result.to}${result.unchanged ? ' (unchanged)' : ''}\n`,
    );
  return 0;
}

/** `Packed 12 files (3,456 bytes) from dist; left out: .git.`: what the tarball holds. */
function packedText(dir: string, packed: { files: number; bytes: number; leftOut: string[] }): string {
  const files = `${packed.files} file${packed.files === 1 ? '' : 's'}`;
  const bytes = `${packed.bytes} byte${packed.bytes === 1 ? '' : 's'}`;
  const shown = packed.leftOut.slice(0, 10).map(shownEscaped).join(', ');
  const more = packed.leftOut.length > 10 ? ` and ${packed.leftOut.length - 10} more` : '';
  const left = packed.leftOut.length ? `left out: ${shown}${more}` : 'nothing left out';
  return `Packed ${files} (${bytes}) from ${dir}; ${left}.`;
}

async function rollbackMain(args: Args, log: Logger): Promise<number> {
  validateName(String(args._[0]), 'app name');
  if (typeof args.version === 'string' && args.version) validateVersion(args.version, '--version');
  if (args.list) {
    if (typeof args.to !== 'string' || !args.to)
      throw new UsageError('Missing --to. Run `release rollback --help` for usage.');
    await rollbackChoices(args, log, false);
    return 0;
  }
  for (const flag of ['to', 'key']) {
    if (typeof args[flag] !== 'string' || args[flag] === '')
      throw new UsageError(`Missing --${flag}. Run \`release rollback --help\` for usage.`);
  }
  // On a terminal, without --version: pick from the ledger (elsewhere: the previous release).
  if (args.version === undefined && !args.json && process.stdin.isTTY && process.stderr.isTTY)
    args.version = await rollbackChoices(args, log, true);
  const rollback = {
    name: String(args._[0]),
    to: String(args.to),
    version: args.version,
    key: String(args.key),
    passphraseFile: args['passphrase-file'],
    keys: args.keys,
    expiresDays: args.expires,
    seq: args.seq,
    log,
    step: pauseStep(),
    state: (await ledgerState(args)).state,
  };
  const stepFlags = ['wait', 'max-failures', 'allow-missing', 'poll'];
  if (args.steps !== undefined) return rollbackInStepsMain(args, rollback);
  const stray = stepFlags.find((flag) => args[flag] !== undefined);
  if (stray)
    throw new UsageError(`--${stray} goes with --steps (a rollback in steps). Run \`release rollback --help\`.`);
  // With --fleet, hook-server records the rollback in its audit trail, as it records a rollout's steps.
  const fleet = await fleetToTell(args);
  const { rollbackPublished } = await import('../lib/release/rollout/rollback.ts');
  const result = await rollbackPublished(rollback);
  if (fleet) {
    const { tellFleetOfRollback } = await import('../lib/release/rollout/rollback-steps.ts');
    await tellFleetOfRollback({ ...fleet, log }, result);
  }
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else
    process.stdout.write(
      `Rolled ${result.app} back from ${result.from} to ${result.version} (${result.file}) at ${result.to}: VERSION SEQ ${result.seq}\n`,
    );
  return 0;
}

/** `--fleet URL --fleet-secret SECRET`, checked and resolved before anything is written; undefined without. */
async function fleetToTell(args: Args): Promise<{ fleet: string; secret: string } | undefined> {
  if (args.fleet === undefined && args['fleet-secret'] === undefined) return undefined;
  if (typeof args.fleet !== 'string' || !args.fleet || typeof args['fleet-secret'] !== 'string')
    throw new UsageError("--fleet needs a URL and --fleet-secret the app's fleet secret (file:PATH or env:NAME).");
  const { fleetBase } = await import('../lib/release/rollout/fleet-client.ts');
  fleetBase(args.fleet);
  const { resolveSecretFlag } = await import('../lib/core/secrets.ts');
  return { fleet: args.fleet, secret: await resolveSecretFlag(args['fleet-secret'], '--fleet-secret') };
}

/** `release rollback … --steps`: the rollback at the first step, then the rollout's steps; 1 on a halt. */
async function rollbackInStepsMain(
  args: Args,
  rollback: import('../lib/release/rollout/rollback.ts').RollbackOptions,
): Promise<number> {
  const { parseAllowance, parseSteps } = await import('../lib/release/rollout/plan.ts');
  const steps = parseSteps(String(args.steps));
  const maxFailures = parseAllowance(String(args['max-failures'] ?? '0'), '--max-failures');
  const allowMissing = parseAllowance(String(args['allow-missing'] ?? '0'), '--allow-missing');
  for (const flag of ['version', 'fleet', 'fleet-secret']) {
    if (typeof args[flag] !== 'string' || args[flag] === '')
      throw new UsageError(
        `Missing --${flag}: a rollback in steps needs it. Run \`release rollback --help\` for usage.`,
      );
  }
  const { resolveSecretFlag } = await import('../lib/core/secrets.ts');
  const secret = await resolveSecretFlag(String(args['fleet-secret']), '--fleet-secret');
  const { rollbackInSteps } = await import('../lib/release/rollout/rollback-steps.ts');
  const result = await rollbackInSteps({
    ...rollback,
    fleet: String(args.fleet),
    secret,
    steps,
    waitSec: args.wait ?? 600,
    maxFailures,
    allowMissing,
    pollSec: args.poll,
    signal: abortOnSignals().signal,
    print: (line) => {
      if (!args.json) process.stdout.write(`${line}\n`);
    },
  });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.rollout.state === 'done' ? 0 : 1;
}

async function promoteMain(args: Args, log: Logger): Promise<number> {
  const app = String(args._[0]);
  const byEnvironment = await promoteEnvironments(args, app, log);
  for (const flag of byEnvironment ? ['from', 'to'] : ['from', 'to', 'key']) {
    if (typeof args[flag] !== 'string' || args[flag] === '')
      throw new UsageError(`Missing --${flag}. Run \`release promote --help\` for usage.`);
  }
  const key = typeof args.key === 'string' && args.key ? args.key : byEnvironment?.key;
  if (!key) throw new UsageError('Missing --key (or key: in the apps: block). Run `release promote --help`.');
  if ((args.force || args.override) && typeof args.reason !== 'string')
    throw new UsageError('--force and --override need --reason TEXT: why, recorded in the ledger.');
  if (!args.force && !args.override && args.reason !== undefined)
    throw new UsageError('--reason goes with --force or --override. Run `release promote --help` for usage.');
  if (args.override && !byEnvironment)
    throw new UsageError('--override is for environments of shipkit.yml (--from staging --to production).');
  const waitMs = args.wait === undefined ? undefined : parseDuration(String(args.wait));
  if (args.wait !== undefined && (waitMs === undefined || !byEnvironment))
    throw new UsageError(
      waitMs === undefined
        ? `--wait takes a duration such as 30s, 45m or 24h, got ${JSON.stringify(String(args.wait).slice(0, 40))}.`
        : '--wait is for environments of shipkit.yml (--from staging --to production).',
    );
  const { promoteRelease } = await import('../lib/release/publish/promote.ts');
  const state = (await ledgerState(args)).state;
  const { whileGateClosed } = await import('../lib/pipeline/environments.ts');
  const waiting = (reason: string, until: Date) => {
    process.stderr.write(`Waiting up to ${until.toISOString()}: ${reason}\n`);
    log.info('promote waits', { reason });
  };
  const result = await whileGateClosed(waitMs, { pollMs: gatePollMs(), waiting }, () =>
    promoteRelease({
      app,
      version: String(args._[1]),
      from: byEnvironment?.from ?? String(args.from),
      to: byEnvironment?.to ?? String(args.to),
      fromEnv: byEnvironment ? String(args.from) : args['from-env'],
      toEnv: byEnvironment ? String(args.to) : args['to-env'],
      platform: args.platform,
      key,
      passphraseFile: args['passphrase-file'] ?? byEnvironment?.passphraseFile,
      keys: args.keys,
      force: args.force ? { reason: String(args.reason) } : undefined,
      copy: args.copy === true || byEnvironment?.copy === true,
      expiresDays: args.expires,
      log,
      step: pauseStep(),
      state,
      admit: byEnvironment?.admit,
      rollout: byEnvironment?.rollout,
    }),
  );
  if (byEnvironment) {
    const { recordByCommand } = await import('../lib/audit/trail.ts');
    const detail = { version: result.version, sha256: result.sha256, from: args.from, to: args.to, seq: result.seq };
    const record = {
      action: 'release.promote' as const,
      subject: app,
      detail: { ...detail, ...byEnvironment.reasons },
    };
    await recordByCommand(byEnvironment.config, 'release', record, log);
  }
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else
    process.stdout.write(
      `Promoted ${result.app} ${result.version} (${result.file}, sha256 ${result.sha256}) from ` +
        `${result.from_env ?? result.from} to ${result.to_env ?? result.to}: VERSION SEQ ${result.seq}` +
        `${result.linked ? ', the tarball hard-linked' : ''}` +
        `${result.overrode ? ` (forced past: ${result.overrode})` : ''}\n`,
    );
  return 0;
}

/** How often `promote --wait` asks again (SHIPKIT_GATE_POLL_MS: tests). */
const gatePollMs = () => Number(process.env.SHIPKIT_GATE_POLL_MS) || 10_000;

/**
 * `--from staging --to production`: environments of APP in shipkit.yml (`--config`), their DESTs and
 * the app's key, and what the target asks before anything is written (lib/pipeline/environments.ts).
 */
async function promoteEnvironments(args: Args, app: string, log: Logger) {
  const { namesEnvironment, environmentOf, admitPromotion, tellApproversOnce } =
    await import('../lib/pipeline/environments.ts');
  const named = [args.from, args.to].map((v) => typeof v === 'string' && v !== '' && namesEnvironment(v));
  if (!named[0] && !named[1]) return undefined;
  if (!named[0] || !named[1])
    throw new UsageError('--from and --to must both be environments (staging, production) or both DESTs.');
  if (args['from-env'] !== undefined || args['to-env'] !== undefined)
    throw new UsageError(
      '--from-env and --to-env name DESTs; with environments of shipkit.yml they are --from and --to.',
    );
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const source = environmentOf(config, app, String(args.from));
  const target = environmentOf(config, app, String(args.to));
  const reasons = {
    ...(args.force ? { forced: String(args.reason) } : {}),
    ...(args.override ? { override: String(args.reason) } : {}),
  };
  return {
    config,
    reasons,
    from: source.env.to,
    to: target.env.to,
    key: target.app.key,
    passphraseFile: target.app.passphraseFile,
    copy: target.env.copy,
    // With steps of its own, the target's hosts take it step by step: `release rollout --env` raises it.
    rollout: target.env.rollout && target.env.rollout.steps[0] < 100 ? target.env.rollout.steps[0] : undefined,
    admit: (facts: Parameters<typeof admitPromotion>[2]) =>
      admitPromotion(target, source.env, facts, {
        force: reasons.forced,
        override: reasons.override,
        log,
        tell: async (request) => {
          const told = await tellApproversOnce(config, request, (await ledgerState(args)).state, log);
          if (told) process.stderr.write(`Told the approvers (${told} notify targets).\n`);
        },
      }),
  };
}

async function historyMain(args: Args, log: Logger): Promise<number> {
  const app = validateName(String(args._[0]), 'app name');
  if (typeof args.from !== 'string' || !args.from) return pathsMain(args, app, log);
  const { formatHistory, releaseHistory } = await import('../lib/release/dest/history.ts');
  const read = { app, from: args.from, keys: args.keys, log, ...(await ledgerState(args)) };
  const history = await hostsOfFleet(args, await releaseHistory(read));
  process.stdout.write(args.json ? `${JSON.stringify(history)}\n` : formatHistory(history));
  return 0;
}

/** `release history APP` without --from: each environment of APP in shipkit.yml, and each version's path through them. */
async function pathsMain(args: Args, app: string, log: Logger): Promise<number> {
  let file: string;
  try {
    file = findConfigFile(args.config);
  } catch {
    throw new UsageError('Missing --from DEST (or a shipkit.yml with apps:). Run `release history --help` for usage.');
  }
  const { appOf } = await import('../lib/pipeline/environments.ts');
  const { formatPaths, releaseHistory } = await import('../lib/release/dest/history.ts');
  const found = appOf(await loadShipkitConfig(file), app);
  const state = await ledgerState(args);
  const environments = [];
  for (const env of found.environments.values())
    environments.push({
      env: env.name,
      history: await releaseHistory({ app, from: env.to, keys: args.keys, log, ...state }),
    });
  process.stdout.write(args.json ? `${JSON.stringify({ app, environments })}\n` : formatPaths(app, environments));
  return 0;
}

/** Where what was read at each DEST is remembered (`--state`, else the config folder), and the TOFU line to stderr. */
async function ledgerState(args: Args): Promise<{ state: string; say: (line: string) => void }> {
  const { stateFolder } = await import('../lib/release/dest/seen.ts');
  const os = await import('node:os');
  const state = stateFolder(typeof args.state === 'string' ? args.state : undefined, process.env, os.homedir());
  return { state, say: (line) => process.stderr.write(`${line}\n`) };
}

/** `history` with its releases' hosts when `--fleet` names hook-server (with `--fleet-secret`). */
async function hostsOfFleet(args: Args, history: History): Promise<History> {
  if (args.fleet === undefined) return history;
  if (typeof args.fleet !== 'string' || !args.fleet || typeof args['fleet-secret'] !== 'string')
    throw new UsageError("--fleet needs a URL and --fleet-secret the app's fleet secret (file:PATH or env:NAME).");
  const { resolveSecretFlag } = await import('../lib/core/secrets.ts');
  const secret = await resolveSecretFlag(args['fleet-secret'], '--fleet-secret');
  const { fetchFleetReleases } = await import('../lib/release/rollout/fleet-client.ts');
  const { withHosts } = await import('../lib/release/dest/history.ts');
  return withHosts(history, await fetchFleetReleases({ fleet: args.fleet, app: history.app, secret }));
}

async function diffMain(args: Args, log: Logger): Promise<number> {
  const [app, from, to] = args._.map(String);
  validateName(app, 'app name');
  validateVersion(from, 'V1');
  validateVersion(to, 'V2');
  const { dest, pinned } =
    typeof args.from === 'string' && args.from
      ? { dest: args.from, pinned: undefined }
      : await publishedDest(args, app);
  const { releaseDiff } = await import('../lib/release/diff/diff.ts');
  const { formatDiff } = await import('../lib/release/diff/text.ts');
  const diff = await releaseDiff({
    app,
    from,
    to,
    dest,
    keys: args.keys,
    platform: args.platform,
    repoDir: args.repo,
    cwd: process.cwd(),
    log,
    pinned,
    ...(await ledgerState(args)),
  });
  process.stdout.write(args.json ? `${JSON.stringify(diff)}\n` : formatDiff(diff));
  return 0;
}

/**
 * Without --from: where shipkit.yml publishes APP (a repo's publish.to), and the primary its
 * publish.key pins there; else a UsageError saying to give --from.
 */
async function publishedDest(
  args: Args,
  app: string,
): Promise<{ dest: string; pinned?: { primary: string; by: string } }> {
  let file: string;
  try {
    file = findConfigFile(args.config);
  } catch {
    throw new UsageError(
      'Missing --from DEST, and no shipkit.yml says where APP is published. Run `release diff --help` for usage.',
    );
  }
  const config = await loadShipkitConfig(file);
  const dest = publishedTo(config, app);
  if (!dest)
    throw new UsageError(
      `Missing --from DEST: no repo in ${file} publishes ${app} to one place. Run \`release diff --help\` for usage.`,
    );
  const publish = [...config.repos.values()].find((r) => r.publish?.name === app && r.publish.to === dest)?.publish;
  if (!publish || args.keys !== undefined) return { dest };
  const { primaryOfKeyFile } = await import('../lib/release/dest/seen.ts');
  return { dest, pinned: { primary: await primaryOfKeyFile(publish.key), by: `${file}'s publish.key` } };
}

/**
 * `release rollback --list`, and the picker on a terminal: the releases the ledger says it can go
 * back to. The version picked, or undefined when the list was only printed.
 */
async function rollbackChoices(args: Args, log: Logger, pick: boolean): Promise<string | undefined> {
  const { hostsText, releaseHistory, rollbackChoices: choicesOf } = await import('../lib/release/dest/history.ts');
  const beside = typeof args.key === 'string' ? path.join(path.dirname(args.key), 'keys.asc') : undefined;
  const keys = args.keys ?? (beside && existsSync(beside) ? beside : undefined);
  const history = await hostsOfFleet(
    args,
    await releaseHistory({ app: String(args._[0]), from: String(args.to), keys, log, ...(await ledgerState(args)) }),
  );
  const choices = choicesOf(history);
  const line = (r: (typeof choices)[number]) =>
    `${r.version}  published ${r.at.slice(0, 19).replace('T', ' ')}${r.fleet ? `  ${hostsText(r.fleet).trim()}` : ''}`;
  if (!pick) {
    if (args.json) process.stdout.write(`${JSON.stringify(choices)}\n`);
    else
      process.stdout.write(
        choices.length ? choices.map(line).join('\n') + '\n' : 'No release in the ledger to go back to.\n',
      );
    return undefined;
  }
  if (!choices.length) throw new UsageError(`The ledger at ${history.from} holds no release to go back to.`);
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    process.stderr.write(`Go back to which release of ${history.app}? (the ledger at ${history.from})\n`);
    choices.forEach((r, i) => process.stderr.write(`  ${i + 1}) ${line(r)}\n`));
    const answer = (await rl.question(`Number [1]: `)).trim() || '1';
    const chosen = choices[Number(answer) - 1];
    if (!/^\d+$/.test(answer) || !chosen)
      throw new UsageError(`No release numbered ${JSON.stringify(answer)}; nothing was written.`);
    return chosen.version;
  } finally {
    rl.close();
  }
}

async function rolloutMain(args: Args, log: Logger): Promise<number> {
  const name = validateName(String(args._[0]), 'app name');
  const env = await rolloutEnvironment(args, name, log);
  const { parseAllowance, parseSteps } = await import('../lib/release/rollout/plan.ts');
  const rules = env?.rules;
  const steps = args.steps === undefined && rules ? rules.steps : parseSteps(String(args.steps ?? '1,10,50,100'));
  const maxFailures =
    args['max-failures'] === undefined && rules
      ? rules.maxFailures
      : parseAllowance(String(args['max-failures'] ?? '0'), '--max-failures');
  const allowMissing =
    args['allow-missing'] === undefined && rules
      ? rules.allowMissing
      : parseAllowance(String(args['allow-missing'] ?? '0'), '--allow-missing');
  const given = { to: env?.to ?? args.to, fleet: env?.fleet ?? args.fleet, key: args.key ?? env?.key };
  for (const flag of ['to', 'fleet', 'key'] as const) {
    if (typeof given[flag] !== 'string' || given[flag] === '')
      throw new UsageError(`Missing --${flag}. Run \`release rollout --help\` for usage.`);
  }
  if (!env && (typeof args['fleet-secret'] !== 'string' || args['fleet-secret'] === ''))
    throw new UsageError('Missing --fleet-secret. Run `release rollout --help` for usage.');
  const { resolveSecretFlag } = await import('../lib/core/secrets.ts');
  const secret = env?.secret ?? (await resolveSecretFlag(String(args['fleet-secret']), '--fleet-secret'));
  const { rolloutRelease } = await import('../lib/release/rollout/rollout.ts');
  const pauseAt = process.env.SHIPKIT_TEST_PAUSE_AT;
  const step = pauseAt
    ? async (at: string) => {
        if (at === pauseAt) {
          process.stderr.write(`paused at ${at}\n`);
          await new Promise(() => setInterval(() => {}, 60_000));
        }
      }
    : undefined;
  const controller = abortOnSignals();
  const result = await rolloutRelease({
    name,
    to: String(given.to),
    fleet: String(given.fleet),
    secret,
    steps,
    waitSec: args.wait ?? rules?.waitSec ?? 600,
    maxFailures,
    allowMissing,
    rollback: Boolean(args.rollback) || (rules?.rollback ?? false),
    key: String(given.key),
    passphraseFile: args['passphrase-file'] ?? env?.passphraseFile,
    windows: env?.windows,
    gates: env?.gates,
    override: env?.override,
    keys: args.keys,
    pollSec: args.poll,
    log,
    state: (await ledgerState(args)).state,
    signal: controller.signal,
    step,
    print: (line) => {
      if (!args.json) process.stdout.write(`${line}\n`);
    },
  });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.state === 'done' ? 0 : 1;
}

/**
 * `--env production`: the environment of APP in shipkit.yml gives DEST, hook-server, the fleet
 * secret, the steps, the key, and the windows and gates every step must pass.
 */
async function rolloutEnvironment(args: Args, app: string, log: Logger) {
  if (args.env === undefined) {
    for (const flag of ['override', 'reason'])
      if (args[flag] !== undefined && args[flag] !== false)
        throw new UsageError(`--${flag} goes with --env. Run \`release rollout --help\`.`);
    return undefined;
  }
  for (const flag of ['to', 'fleet', 'fleet-secret'])
    if (args[flag] !== undefined)
      throw new UsageError(`--${flag} comes from the environment with --env; leave it out.`);
  if (Boolean(args.override) !== (typeof args.reason === 'string'))
    throw new UsageError('--override needs --reason TEXT (recorded), and --reason goes with --override.');
  const { environmentOf, fleetUrlOf, fleetSecretOf, checkOverride } = await import('../lib/pipeline/environments.ts');
  const config = await loadShipkitConfig(findConfigFile(args.config));
  const found = environmentOf(config, app, String(args.env));
  if (args.override) {
    await checkOverride(found, log);
    const { recordByCommand } = await import('../lib/audit/trail.ts');
    const detail = { env: found.env.name, reason: String(args.reason) };
    await recordByCommand(config, 'release', { action: 'rollout.override', subject: app, detail }, log);
  }
  return {
    to: found.env.to,
    fleet: fleetUrlOf(config, found.app),
    secret: await fleetSecretOf(config, found),
    key: found.app.key,
    passphraseFile: found.app.passphraseFile,
    rules: found.env.rollout,
    windows: found.env.windows,
    gates: found.env.gates,
    override: args.override ? String(args.reason) : undefined,
  };
}

// `release keys ACTION` is a command with commands of its own: its own spec, so each action
// declares its own flags.
const argv = process.argv.slice(2);
if (argv[0] === 'keys') await runCli(keysCliSpec, keysMain, argv.slice(1));
else
  await runCli(releaseCliSpec, (args, log) =>
    args.command === 'publish'
      ? publishMain(args, log)
      : args.command === 'rollback'
        ? rollbackMain(args, log)
        : args.command === 'rollout'
          ? rolloutMain(args, log)
          : args.command === 'promote'
            ? promoteMain(args, log)
            : args.command === 'history'
              ? historyMain(args, log)
              : args.command === 'diff'
                ? diffMain(args, log)
                : releaseMain(args, log),
  );
