// The Debian package keeps the secrets /etc/shipkit/shipkit.yml names as env:NAME in
// hook-server.env beside it (root:shipkit 0640, tools/deb/postinst), which only the hook-server
// systemd unit loads (EnvironmentFile=). Run by hand, or where there is no systemd (a container,
// WSL), hook-server finds the variable unset: this says where it is and how to load it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';

export const ENV_FILE_NAME = 'hook-server.env';

export interface EnvFileLookup {
  /** /etc/group's text, for the name of the group the file belongs to (the user the unit runs as). */
  groups?: () => string;
}

/** The env file that goes with a config file: hook-server.env in its folder. */
export function envFileFor(configFile: string): string {
  return path.join(path.dirname(configFile), ENV_FILE_NAME);
}

/**
 * Where an unset variable is kept and how to load it, when the config's folder has a
 * hook-server.env that sets it (or that cannot be read to tell); undefined otherwise.
 */
export function unsetVariableHint(
  name: string,
  configFile: string,
  { groups = () => readFileSync('/etc/group', 'utf8') }: EnvFileLookup = {},
): string | undefined {
  const file = envFileFor(configFile);
  if (!existsSync(file)) return undefined;
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // Not ours to read (root:shipkit 0640): it may well hold the variable.
  }
  if (
    text !== undefined &&
    !text.split('\n').some((line) =>
      line
        .replace(/^\s*export\s+/, '')
        .trimStart()
        .startsWith(`${name}=`),
    )
  )
    return undefined;
  const plain = [file, configFile].every((p) => /^[\w./@+-]+$/.test(p));
  // Nested in runuser's sh -c '…' only when nothing in them needs quoting.
  const owner = plain ? groupOf(file, groups) : undefined;
  const load = `set -a; . ${shellWord(file)}; set +a`;
  const run = `${load}; exec hook-server --config ${configFile}`;
  return (
    `It is set in ${file}, which only the hook-server systemd unit loads: start that (systemctl start hook-server), or, without systemd (a container, WSL), load the file first: ${load}` +
    (owner
      ? ` — as the user the unit runs as, so that what hook-server writes stays that user's: runuser -u ${owner} -- sh -c '${run}'.`
      : `; then: hook-server --config ${shellWord(configFile)}.`)
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
