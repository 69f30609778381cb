// The one Unix-user lookup: `getent passwd NAME` asks the system's user database through NSS,
// so accounts from LDAP, sssd or systemd-homed are found as well as those in /etc/passwd.
import { $ } from './shell.ts';
import { ConfigError } from './errors.ts';

export interface UnixAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** One passwd line (`name:x:uid:gid:gecos:home:shell`), or undefined when it is not one. */
export function parsePasswdLine(line: string): UnixAccount | undefined {
  const fields = line.replace(/\r?\n$/, '').split(':');
  if (fields.length < 7 || !fields[0]) return undefined;
  const [name, , uid, gid, , home, shell] = fields;
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home || '/', shell };
}

/** The account called `name`, or undefined when the user database has none. */
export async function findUser(name: string): Promise<UnixAccount | undefined> {
  // `--` so a name starting with "-" is looked up, not taken for an option.
  const result = await $({ quiet: true, nothrow: true })`getent passwd -- ${name}`;
  if (result.exitCode !== 0) return undefined;
  return parsePasswdLine(result.stdout.split('\n')[0]);
}

/**
 * The account called `name`; a ConfigError naming `where` (the config key that asked for it)
 * when there is none.
 */
export async function lookupUser(name: string, { where }: { where?: string } = {}): Promise<UnixAccount> {
  const account = await findUser(name);
  if (!account) {
    throw new ConfigError(
      `${where ? `${where}: user` : 'User'} ${name} does not exist on this machine; create it (useradd ` +
        `--system ${name}) or remove \`user:\` from the repo's config.`,
    );
  }
  return account;
}
