// `updates.gpg.key`: which release key a host trusts, as a full fingerprint (what trust needs) or a
// key ID (which only selects among keys already trusted). See docs/launchfit.md "Trust".
import { ConfigError } from '../../core/errors.ts';

export type KeyPin = { kind: 'fingerprint'; value: string } | { kind: 'keyid'; value: string };

/** `0123 4567 …`, `0x…`: a full fingerprint (40 or 64 hex) or a long/short key ID (16/8 hex). */
export function parseKeyPin(text: string): KeyPin {
  const hex = text.replace(/\s+/g, '').replace(/^0x/i, '').toLowerCase();
  if (/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(hex)) return { kind: 'fingerprint', value: hex };
  if (/^([0-9a-f]{16}|[0-9a-f]{8})$/.test(hex)) return { kind: 'keyid', value: hex };
  throw new ConfigError(
    `updates.gpg.key ${JSON.stringify(text)} is neither a full fingerprint (40 or 64 hex digits) nor a key ID (8 or 16 hex digits).`,
  );
}
