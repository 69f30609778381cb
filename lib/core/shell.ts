// zx's `$`, with bash kept from ~/.bashrc (`bash --norc -c`). Bash reads ~/.bashrc for a `-c`
// command whose stdin is a socket (node's pipes are) when SHLVL is unset or 0, as under systemd:
// a ~/.bashrc with pyenv, nvm or conda costs each command seconds, and may print or change PATH
// under a build. docs/internals.md says more.
import childProcess, { type SpawnOptions, type SpawnSyncOptions } from 'node:child_process';
import path from 'node:path';
import { $ as zx$, type Options } from 'zx/core';

type Spawn = typeof childProcess.spawn;
type SpawnSync = typeof childProcess.spawnSync;

/**
 * `spawn` for zx: where node would run `SHELL -c COMMAND` for a shell that is bash, it runs
 * `bash --norc -c COMMAND` (node joins the file and its arguments with spaces, as here).
 */
export function bashWithoutRc<T extends Spawn | SpawnSync>(spawn: T): T {
  const wrapped = (file: string, args: readonly string[] = [], options: SpawnOptions & SpawnSyncOptions = {}) => {
    const shell = options.shell;
    if (typeof shell !== 'string' || path.basename(shell) !== 'bash') {
      return (spawn as (f: string, a: readonly string[], o: object) => unknown)(file, args, options);
    }
    const command = [file, ...args].join(' ');
    return (spawn as (f: string, a: readonly string[], o: object) => unknown)(shell, ['--norc', '-c', command], {
      ...options,
      shell: false,
    });
  };
  return wrapped as unknown as T;
}

const spawnWithoutRc = bashWithoutRc(childProcess.spawn);
const spawnSyncWithoutRc = bashWithoutRc(childProcess.spawnSync);

/** zx options with both spawns kept from ~/.bashrc: ours, or the caller's own (run as a user) wrapped. */
function withoutRc(options: Partial<Options>): Partial<Options> {
  return {
    ...options,
    spawn: options.spawn ? bashWithoutRc(options.spawn) : spawnWithoutRc,
    spawnSync: options.spawnSync ? bashWithoutRc(options.spawnSync) : spawnSyncWithoutRc,
  };
}

/**
 * Use as zx's `$`: a template tag, or called with options first (`$({ quiet: true })\`…\``). Each
 * call gives zx its spawns as options; zx's own defaults are left as they are.
 */
export const $ = ((first: unknown, ...rest: unknown[]) =>
  Array.isArray(first)
    ? (zx$(withoutRc({})) as (...args: unknown[]) => unknown)(first, ...rest)
    : zx$(withoutRc(first as Partial<Options>))) as typeof zx$;
