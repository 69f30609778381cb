// The Debian package keeps the secrets /etc/shipkit/shipkit.yml names as env:NAME in
// hook-server.env beside it (root:shipkit 0640, tools/deb/postinst), which only the hook-server
// systemd unit loads (EnvironmentFile=). Run by hand, or where there is no systemd (a container,
// WSL), hook-server finds the variable unset: this says where it is and how to load it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';

export const ENV_FILE_NAME = 'hook-server.env';
/** The Debian package's config (tools/deb.ts), its hook-server.env beside it, and the unit's user. */
export const PACKAGE_CONFIG = '/etc/shipkit/shipkit.yml';
const PACKAGE_USER = 'shipkit';
/** What the package's postinst writes into hook-server.env on the first install. */
const PACKAGE_VARIABLES = ['SHIPKIT_WEBHOOK_SECRET', 'SHIPKIT_TOKEN'];

export interface EnvFileLookup {
  /** /etc/group's text, for the name of the group the file belongs to (the user the unit runs as). */
  groups?: () => string;
  /** The Debian package's config file: tests hand in one of their own. */
  packageConfig?: string;
}

/** The env file that goes with a config file: hook-server.env in its folder. */
export function envFileFor(configFile: string): string {
  return path.join(path.dirname(configFile), ENV_FILE_NAME);
}

/**
 * Where an unset variable is kept and how to load it, when the config's folder has a
 * hook-server.env that sets it (or that cannot be read to tell); with the Debian package's config
 * also when that file is missing or lacks the variable; undefined otherwise.
 */
export function unsetVariableHint(
  name: string,
  configFile: string,
  { groups = () => readFileSync('/etc/group', 'utf8'), packageConfig = PACKAGE_CONFIG }: EnvFileLookup = {},
): string | undefined {
  const file = envFileFor(configFile);
  const ofPackage = path.resolve(configFile) === packageConfig;
  if (!existsSync(file)) return ofPackage ? missingFileHint(name, file, configFile) : undefined;
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // Not ours to read (root:shipkit 0640): it may well hold the variable.
  }
  const plain = [file, configFile].every((p) => /^[\w./@+-]+$/.test(p));
  // Nested in runuser's sh -c '…' only when nothing in them needs quoting.
  const owner = plain ? groupOf(file, groups) : undefined;
  if (text !== undefined && !setsVariable(text, name))
    return ofPackage ? notInFileHint(name, file, configFile, owner) : undefined;
  const load = `set -a; . ${shellWord(file)}; set +a`;
  return (
    `It is set in ${file}, which only the hook-server systemd unit loads: start that (systemctl start ` +
    `hook-server), or, without systemd (a container, WSL), load the file first: ${load}` +
    (owner
      ? ` — as the user the unit runs as, so that what hook-server writes stays that user's: ${runuserLine(owner, file, configFile)}.`
      : `; then: hook-server --config ${shellWord(configFile)}.`)
  );
}

function setsVariable(text: string, name: string): boolean {
  return text.split('\n').some((line) =>
    line
      .replace(/^\s*export\s+/, '')
      .trimStart()
      .startsWith(`${name}=`),
  );
}

/** hook-server run by hand as the unit runs it: as its user, with the env file loaded. */
function runuserLine(user: string, file: string, configFile: string): string {
  return `runuser -u ${user} -- sh -c 'set -a; . ${file}; set +a; exec hook-server --config ${configFile}'`;
}

/** The package's config without its hook-server.env (removed, or a copy of /etc without it). */
function missingFileHint(name: string, file: string, configFile: string): string {
  const written = PACKAGE_VARIABLES.includes(name)
    ? `\`dpkg-reconfigure shipkit\` writes it again, with a new webhook secret and read token (give the new secret to the forges' webhooks)`
    : `\`dpkg-reconfigure shipkit\` writes it again; then add ${name}=… to it`;
  return (
    `The Debian package keeps it in ${file} (root:${PACKAGE_USER} 0640), which is missing: ${written}. ` +
    `Then start the hook-server systemd unit (systemctl start hook-server), which loads that file, or ` +
    `start it by hand as root: ${runuserLine(PACKAGE_USER, file, configFile)}.`
  );
}

/** The package's hook-server.env, readable here, without the variable the config names. */
function notInFileHint(name: string, file: string, configFile: string, owner: string | undefined): string {
  return (
    `The Debian package keeps the secrets its config names as env:NAME in ${file}, which the hook-server ` +
    `systemd unit loads, and ${name} is not in it: add ${name}=… there, ` +
    `then systemctl restart hook-server, or start it by hand as root: ${runuserLine(owner ?? PACKAGE_USER, file, configFile)}.`
  );
}

function shellWord(text: string): string {
  return /^[\w./@+-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

/** An unset `env:NAME` secret's ConfigError with the hint above added; any other error as it was. */
export function explainUnsetVariable(
  error: unknown,
  value: string,
  configFile: string,
  env: NodeJS.ProcessEnv,
  lookup: EnvFileLookup = {},
): unknown {
  if (!(error instanceof ConfigError) || !value.startsWith('env:') || env[value.slice(4)]) return error;
  const hint = unsetVariableHint(value.slice(4), configFile, lookup);
  return hint ? new ConfigError(`${error.message} ${hint}`, { cause: error }) : error;
}

/** The name of the file's group when it is not root's (the Debian package's: shipkit). */
function groupOf(file: string, groups: () => string): string | undefined {
  try {
    const gid = statSync(file).gid;
    if (gid === 0) return undefined;
    const entry = groups()
      .split('\n')
      .map((line) => line.split(':'))
      .find((fields) => Number(fields[2]) === gid && fields[0] !== '');
    return entry && /^[a-z_][a-z0-9_-]{0,31}$/.test(entry[0]) ? entry[0] : undefined;
  } catch {
    return undefined;
  }
}
