// Which hosts take a version at ROLLOUT P (docs/fleet.md): a host's bucket is sha256(host id + " " +
// version) read as a number in [0,100), the same on the host, in hook-server and in `release
// rollout`, so all three agree on who is in without talking to each other. A new version reshuffles
// the buckets, so the same hosts are not always the first.
import { createHash } from 'node:crypto';

/** A host id: 32 lowercase hex characters (16 random bytes), in DIR/.launchfit/host-id. */
export const HOST_ID_PATTERN = /^[0-9a-f]{32}$/;

/** [0,100): sha256(hostId + " " + version), first 8 bytes big-endian as an unsigned integer / 2^64 * 100. */
export function rolloutBucket(hostId: string, version: string): number {
  const digest = createHash('sha256').update(`${hostId} ${version}`).digest();
  return (Number(digest.readBigUInt64BE(0)) / 2 ** 64) * 100;
}

/** Whether the host takes `version` at ROLLOUT `percent`: its bucket is below it. */
export function inRollout(hostId: string, version: string, percent: number): boolean {
  return rolloutBucket(hostId, version) < percent;
}
