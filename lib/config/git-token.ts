// A repo's `token:` and `token_user:` as shipkit.yml gives them (docs/hook-server.md): unresolved, so the
// secret is read only where the pull runs (lib/pipeline/git-token.ts).
import { configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';

export const DEFAULT_TOKEN_USER = 'x-access-token';

export interface GitTokenConfig {
  /** `token:` unresolved: `env:NAME`, `file:PATH` or the literal token. */
  token: string;
  user: string;
  keyPath: KeyPath;
}

/** `token:` and `token_user:` of a repo, or undefined when it has no token. */
export function parseGitToken(doc: ConfigDoc, repoKeyPath: KeyPath): GitTokenConfig | undefined {
  const token = getKey(doc, [...repoKeyPath, 'token'], 'string');
  const user = getKey(doc, [...repoKeyPath, 'token_user'], 'string');
  if (token === undefined) {
    if (user !== undefined)
      throw configError(
        doc,
        [...repoKeyPath, 'token_user'],
        'is set but token: is not; add token: env:NAME (or file:PATH), or remove token_user:.',
      );
    return undefined;
  }
  if (!token || token === 'env:' || token === 'file:')
    throw configError(doc, [...repoKeyPath, 'token'], 'is empty; give env:NAME or file:PATH of the access token.');
  if (user !== undefined && (!user || /[:\s\x00-\x1f\x7f]/.test(user))) {
    throw configError(
      doc,
      [...repoKeyPath, 'token_user'],
      'must be a user name without ":", spaces or control characters (a GitLab deploy token\'s is gitlab+deploy-token-N).',
    );
  }
  return { token, user: user ?? DEFAULT_TOKEN_USER, keyPath: [...repoKeyPath, 'token'] };
}
