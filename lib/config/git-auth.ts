// A repo's `ssh_key:` and `known_hosts:` as shipkit.yml gives them (docs/hook-server.md), and the ssh host
// a clone URL names. What the pull does with them is lib/pipeline/git-auth.ts.
import path from 'node:path';
import { configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';

export interface GitAuthConfig {
  /** Absolute path of the deploy key (`ssh_key: file:PATH` or a path). */
  sshKey?: string;
  knownHosts?: string;
  keyPath: KeyPath;
}

export interface SshRemote {
  user?: string;
  host: string;
  port: number;
}

/** `ssh_key:` and `known_hosts:` of a repo; paths relative to shipkit.yml's folder. */
export function parseGitAuth(doc: ConfigDoc, repoKeyPath: KeyPath): GitAuthConfig {
  const file = (key: string) => {
    const value = getKey(doc, [...repoKeyPath, key], 'string');
    if (value === undefined) return undefined;
    if (value.startsWith('env:'))
      throw configError(
        doc,
        [...repoKeyPath, key],
        'must name a file (file:/etc/shipkit/keys/site_ed25519 or a path), not an environment variable.',
      );
    const name = value.startsWith('file:') ? value.slice(5) : value;
    if (!name) throw configError(doc, [...repoKeyPath, key], 'is empty; give the path of a file.');
    return path.resolve(path.dirname(doc.file), name);
  };
  return { sshKey: file('ssh_key'), knownHosts: file('known_hosts'), keyPath: repoKeyPath };
}

/** The ssh host of a clone URL (`ssh://user@host:port/path` or scp-style `user@host:path`), else undefined. */
export function sshRemoteOf(url: string | undefined): SshRemote | undefined {
  if (!url) return undefined;
  const full = /^(?:git\+)?ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^/:]+)(?::(\d+))?\//.exec(url);
  if (full) return { user: full[1], host: full[2].replace(/^\[|\]$/g, ''), port: full[3] ? Number(full[3]) : 22 };
  const scp = /^(?:([^@/:]+)@)?([^/:]+):(?!\/\/)/.exec(url);
  if (scp && !url.includes('://')) return { user: scp[1], host: scp[2], port: 22 };
  return undefined;
}
