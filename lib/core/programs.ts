// The programs shipkit runs that node does not bring (bash for zx, git, rsync, npm): looked up
// on the PATH before the work starts, so a machine without one hears its name and what it is
// for, instead of a crash deep inside (zx without bash: "Cannot read properties of undefined").
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.ts';

/** What each program is for, in the words of the message that says it is missing. */
const PURPOSE: Record<string, string> = {
  bash: 'to run commands',
  git: 'to fetch and push repositories',
  rsync: 'to upload over rsync',
  ssh: 'to reach rsync and git remotes over ssh',
  npm: "to install a repo's dependencies (it has a package.json)",
};

/** The Debian package of a program, where the names differ. */
const PACKAGE: Record<string, string> = { ssh: 'openssh-client' };

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The full path of `name` as a shell would find it on `PATH`, or undefined. */
export function findOnPath(name: string, PATH = process.env.PATH ?? ''): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? name : undefined;
  for (const dir of PATH.split(path.delimiter)) {
    if (dir && isExecutableFile(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** The names in `names` that are not on `PATH`, in order. */
export function missingPrograms(names: readonly string[], PATH = process.env.PATH ?? ''): string[] {
  return names.filter((name) => findOnPath(name, PATH) === undefined);
}

/** "shipkit needs bash on the PATH to run commands (not found in PATH=…). …" for the missing ones. */
export function describeMissingPrograms(missing: readonly string[], PATH: string): string {
  const where = `(not found in PATH=${PATH || '(empty)'})`;
  const packages = missing.map((name) => PACKAGE[name] ?? name).join(' ');
  if (missing.length === 1) {
    const [name] = missing;
    return (
      `shipkit needs ${name} on the PATH${PURPOSE[name] ? ` ${PURPOSE[name]}` : ''} ${where}. ` +
      `Install it (Debian: apt-get install ${packages}) or add its folder to PATH.`
    );
  }
  const named = missing.map((name) => (PURPOSE[name] ? `${name} (${PURPOSE[name]})` : name));
  return (
    `shipkit needs ${named.slice(0, -1).join(', ')} and ${named.at(-1)} on the PATH ${where}. ` +
    `Install them (Debian: apt-get install ${packages}) or add their folders to PATH.`
  );
}

/** Throws a ConfigError (exit 2) naming every program of `names` that is not on `PATH`. */
export function requirePrograms(names: readonly string[], PATH = process.env.PATH ?? ''): void {
  const missing = missingPrograms(names, PATH);
  if (missing.length) throw new ConfigError(describeMissingPrograms(missing, PATH));
}
