// `Authorization: Bearer TOKEN` checked in constant time: the read API, /metrics.
import { safeEqual } from './signing.ts';

/** Why the request is not authorised, or undefined when it carries the token. */
export function bearerProblem(
  authorization: string | string[] | undefined,
  token: string,
): 'no bearer token' | 'wrong token' | undefined {
  const auth = /^Bearer\s+(\S+)$/i.exec(String(authorization ?? ''));
  if (!auth) return 'no bearer token';
  return safeEqual(auth[1], token) ? undefined : 'wrong token';
}
