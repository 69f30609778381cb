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

/** The highest uid Linux gives (2^32 - 2; 2^32 - 1 is "no uid"). */
const MAX_UID = 4_294_967_294;

/** `#UID` (as sudo writes it): a uid that needs no account, such as one preview's. */
export const NUMERIC_USER = /^#([0-9]{1,10})$/;

/** The account of a bare uid: its group is the same number, it has no home and no shell. */
export function numericAccount(uid: number): UnixAccount {
  if (!Number.isSafeInteger(uid) || uid < 1 || uid > MAX_UID) throw new RangeError(`not a uid: ${uid}`);
  return { name: `#${uid}`, uid, gid: uid, home: '/nonexistent', shell: '/usr/sbin/nologin' };
}

/** The account called `name` (or `#UID`: numericAccount), or undefined when the user database has none. */
export async function findUser(name: string): Promise<UnixAccount | undefined> {
  const numeric = NUMERIC_USER.exec(name);
  if (numeric)
    return Number(numeric[1]) >= 1 && Number(numeric[1]) <= MAX_UID ? numericAccount(Number(numeric[1])) : undefined;
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
