// Each signed host report taken once (docs/fleet.md "Host credentials"): a host's entry keeps the
// latest signature time of its reports taken and their nonces in that second, so a captured report
// is refused after a restart too, even one signed in the same second as the host's next; and a
// host once seen is spoken for by its own credential only.
import { supersedes, type HostEntry } from '../release/format/fleet-report.ts';

/** Reports of one host taken in one second at most: more are refused (429) and sent again later. */
export const MAX_NONCES_PER_SECOND = 16;

/**
 * Why a signed report cannot be taken for a host whose entry is `current`: 'enrolled' (a host
 * already seen, signed with the app's secret), 'replay' (signed before the host's last report
 * taken, or the same second and nonce), 'busy' (too many in that second); undefined: it can be.
 * A report without `signed_at` (none the routes take) is not checked.
 */
export function reportRefusal(
  next: HostEntry,
  current: HostEntry | undefined,
): 'enrolled' | 'replay' | 'busy' | undefined {
  if (next.signed_at === undefined || !current) return undefined;
  if (!next.enrolled) return 'enrolled';
  if (current.signed_at === undefined || next.signed_at > current.signed_at) return undefined;
  if (next.signed_at < current.signed_at) return 'replay';
  // The same second: an entry written before nonces were kept cannot tell, so it refuses.
  const taken = current.nonces;
  const nonce = next.nonces?.[0];
  if (!taken?.length || nonce === undefined || taken.includes(nonce)) return 'replay';
  return taken.length >= MAX_NONCES_PER_SECOND ? 'busy' : undefined;
}

/**
 * The host's entry once `next` is taken: `next` when it supersedes `current`, else `current`;
 * either way with the latest signature time and the nonces taken in that second.
 */
export function takeReport(next: HostEntry, current: HostEntry | undefined): HostEntry {
  const kept = supersedes(next, current) ? next : current!;
  const last = current?.signed_at;
  if (next.signed_at === undefined || (last !== undefined && next.signed_at < last))
    return guarded(kept, last, current?.nonces);
  if (last === undefined || next.signed_at > last) return guarded(kept, next.signed_at, next.nonces);
  return guarded(kept, last, [...(current?.nonces ?? []), ...(next.nonces ?? [])]);
}

function guarded(entry: HostEntry, signedAt: number | undefined, nonces: string[] | undefined): HostEntry {
  return hostEntry(entry, signedAt, nonces?.length ? nonces : undefined);
}

/**
 * A copy of `entry` with `signed_at` and `nonces` as given, made by one literal with its fields in
 * one order and the optional ones added only when set. A fleet keeps 100,000 of these per node: V8
 * stores such objects in a few shared shapes (about 460 bytes each here), where the rest-and-spread
 * copy this replaced made each one a dictionary of its own (about 940).
 */
function hostEntry(entry: HostEntry, signedAt: number | undefined, nonces: string[] | undefined): HostEntry {
  const copy: HostEntry = {
    host: entry.host,
    version: entry.version,
    previous: entry.previous,
    seq: entry.seq,
    bucket: entry.bucket,
    claimed_bucket: entry.claimed_bucket,
    result: entry.result,
    reason: entry.reason,
    seconds: entry.seconds,
    at: entry.at,
  };
  if (entry.sha256 !== undefined) copy.sha256 = entry.sha256;
  if (entry.way !== undefined) copy.way = entry.way;
  if (entry.bytes !== undefined) copy.bytes = entry.bytes;
  if (entry.enrolled !== undefined) copy.enrolled = entry.enrolled;
  if (signedAt !== undefined) copy.signed_at = signedAt;
  if (nonces !== undefined) copy.nonces = nonces;
  return copy;
}
