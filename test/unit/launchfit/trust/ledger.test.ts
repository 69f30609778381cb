// The host's check of the release ledger (lib/launchfit/trust/ledger.ts) with keys and signatures
// made by the real gpg CLI: a whole ledger signed by the subkey its head names and recording this
// VERSION is taken; a missing, unsigned, empty, tampered, older, forked or other-key ledger is
// refused; the tail since the head a host saw is checked alone, and never vouches for what the whole check would refuse.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerificationError } from '../../../../lib/core/errors.ts';
import { checkLedger, checkLedgerTail } from '../../../../lib/launchfit/trust/ledger.ts';
import { readPublicKeys, selectTrustedKeys, type TrustedKeys } from '../../../../lib/launchfit/trust/pgp.ts';
import { ledgerLine, readLedger, type LedgerHead, type NewEntry } from '../../../../lib/release/format/ledger.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import {
  addSigningSubkey,
  detachSign,
  exportPublic,
  genKey,
  makeGpgHome,
  type GpgHome,
  type TestKey,
} from '../../../fixtures/launchfit/gpg.ts';

let g: GpgHome;
let dir: string;
let key: TestKey;
let other: TestKey;
let trusted: TrustedKeys;
let sub = '';

test.before(async () => {
  g = makeGpgHome();
  dir = tmpDir('shipkit-host-ledger-');
  key = await genKey(g, 'Release <release@example.com>');
  await addSigningSubkey(g, key);
  other = await genKey(g, 'Stranger <stranger@example.com>');
  sub = key.subFpr!.toLowerCase();
  const pub = readFileSync(await exportPublic(g, key.fpr, path.join(dir, 'keys.asc')));
  trusted = selectTrustedKeys({ localKeys: await readPublicKeys(pub, 'keyfile') });
});

const vsha = (i: number) => i.toString(16).padStart(64, '0');
const entry = (i: number, signer = sub): NewEntry => ({
  at: '2026-11-25T00:00:00.000Z',
  by: 'ana@build1',
  action: 'publish',
  app: 'site',
  version: `1.${i}`,
  seq: i,
  rollout: null,
  sha256: 'a'.repeat(64),
  version_sha256: vsha(i),
  manifest_sha256: null,
  provenance_sha256: null,
  signer,
  source: { repo: null, commit: null, ref: null },
  note: null,
});

/** The ledger of `count` publishes (the last one's signer as given), its text. */
function ledgerText(count: number, lastSigner = sub): Buffer {
  let text = '';
  for (let i = 1; i <= count; i++)
    text += ledgerLine(entry(i, i === count ? lastSigner : sub), readLedger(Buffer.from(text)).head);
  return Buffer.from(text);
}

let signed = 0;
async function sign(bytes: Buffer, signer = key.subFpr!): Promise<Buffer> {
  const file = path.join(dir, `data-${++signed}`);
  writeFileSync(file, bytes);
  return readFileSync(await detachSign(g, signer, file));
}

const asked = () => {
  const calls = { n: 0 };
  return { calls, trusted: async () => (calls.n++, trusted) };
};

async function refusal(opts: Parameters<typeof checkLedger>[0]): Promise<string> {
  try {
    await checkLedger(opts);
  } catch (error) {
    assert.instance(error, VerificationError);
    return (error as Error).message;
  }
  return 'taken';
}

test('a ledger signed by the subkey its head names, recording this VERSION: its head and length remembered', async () => {
  const text = ledgerText(3);
  const seen = await checkLedger({
    fetched: { text, signature: await sign(text) },
    trusted: async () => trusted,
    seen: undefined,
    versionSha256: vsha(3),
  });
  assert.equal(seen, { ...readLedger(text).head!, bytes: text.length });
  // A VERSION recorded by an earlier entry (a crash between the ledger and VERSION) is found too.
  const again = await checkLedger({
    fetched: { text, signature: await sign(text) },
    trusted: async () => trusted,
    seen: { n: 2, hash: readLedger(ledgerText(2)).head!.hash },
    versionSha256: vsha(2),
  });
  assert.is(again?.n, 3);
});

test('no ledger: nothing to check the first time, refused once one was seen; keys asked only when there is one', async () => {
  const { calls, trusted: ask } = asked();
  assert.is(
    await checkLedger({ fetched: undefined, trusted: ask, seen: undefined, versionSha256: vsha(1) }),
    undefined,
  );
  assert.match(
    await refusal({ fetched: undefined, trusted: ask, seen: { n: 4, hash: 'x' }, versionSha256: vsha(1) }),
    /has no ledger\.jsonl, but this host saw its entry 4 before/,
  );
  assert.is(calls.n, 0);
});

test('refused: no signature, empty, tampered, older than seen, forked, unknown VERSION, another signer', async () => {
  const text = ledgerText(3);
  const signature = await sign(text);
  const head2 = readLedger(ledgerText(2)).head!;
  const cases: Array<[string, Parameters<typeof checkLedger>[0], RegExp]> = [
    [
      'no .sig',
      { fetched: { text }, seen: undefined, versionSha256: vsha(3), trusted: async () => trusted },
      /without ledger\.jsonl\.sig/,
    ],
    [
      'empty',
      {
        fetched: { text: Buffer.alloc(0), signature: await sign(Buffer.alloc(0)) },
        seen: undefined,
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      /an empty ledger\.jsonl/,
    ],
    [
      'an entry edited',
      {
        fetched: { text: Buffer.from(text.toString().replace('"1.2"', '"1.9"')), signature },
        seen: undefined,
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      /ledger is refused: .*entry 3/,
    ],
    [
      'older than seen',
      {
        fetched: { text: ledgerText(2), signature: await sign(ledgerText(2)) },
        seen: readLedger(text).head,
        versionSha256: vsha(2),
        trusted: async () => trusted,
      },
      /an older ledger was put back/,
    ],
    [
      'forked',
      {
        fetched: { text, signature },
        seen: { n: 2, hash: 'f'.repeat(64) },
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      /history was rewritten/,
    ],
    [
      'VERSION in no entry',
      { fetched: { text, signature }, seen: head2, versionSha256: vsha(7), trusted: async () => trusted },
      /is in no entry of the update server's ledger \(3 entries\)/,
    ],
    [
      'signed by the primary, the head names the subkey',
      {
        fetched: { text, signature: await sign(text, key.fpr) },
        seen: undefined,
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      new RegExp(`says subkey ${sub} signed it, but the signature is by ${key.fpr.toLowerCase()}`),
    ],
    [
      'signed by an untrusted key',
      {
        fetched: {
          text: ledgerText(3, other.fpr.toLowerCase()),
          signature: await sign(ledgerText(3, other.fpr.toLowerCase()), other.fpr),
        },
        seen: undefined,
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      /./,
    ],
    [
      'the signature of other bytes',
      {
        fetched: { text, signature: await sign(ledgerText(2)) },
        seen: undefined,
        versionSha256: vsha(3),
        trusted: async () => trusted,
      },
      /./,
    ],
  ];
  for (const [label, opts, want] of cases) assert.match(await refusal(opts), want, label);
});

/** The tail of `count` entries after the first `from`, with the head line's own signature. */
async function tailOf(count: number, from: number, signer = key.subFpr!, lastSigner = sub) {
  const whole = ledgerText(count, lastSigner);
  const before = ledgerText(from);
  const text = whole.subarray(before.length);
  const lastLine = text.subarray(text.lastIndexOf(0x0a, text.length - 2) + 1);
  const after: LedgerHead & { bytes: number } = { ...readLedger(before).head!, bytes: before.length };
  return { whole, tail: { text, after, headSignature: await sign(lastLine, signer) } };
}

test('the tail since the head a host saw: taken when it goes on from it, its head line signed, this VERSION in it', async () => {
  const { whole, tail } = await tailOf(5, 3);
  assert.equal(await checkLedgerTail({ tail, trusted: async () => trusted, versionSha256: vsha(5) }), {
    ...readLedger(whole).head!,
    bytes: whole.length,
  });
  assert.is((await checkLedgerTail({ tail, trusted: async () => trusted, versionSha256: vsha(4) }))?.n, 5);
});

test('a tail that cannot vouch is not taken (the whole ledger is read then)', async () => {
  const { tail } = await tailOf(5, 3);
  const check = (t: typeof tail, version = vsha(5)) =>
    checkLedgerTail({ tail: t, trusted: async () => trusted, versionSha256: version });
  assert.is(await check(tail, vsha(2)), undefined, 'this VERSION is before the tail');
  assert.is(
    await check({ ...tail, after: { ...tail.after, hash: 'e'.repeat(64) } }),
    undefined,
    'not after the head seen',
  );
  assert.is(await check({ ...tail, after: { ...tail.after, n: 2 } }), undefined, 'numbered after another entry');
  assert.is(
    await check({ ...tail, headSignature: (await tailOf(4, 3)).tail.headSignature }),
    undefined,
    'the signature of another line',
  );
  assert.is(await check((await tailOf(5, 3, key.fpr)).tail), undefined, 'signed by a key the head does not name');
  assert.is(
    await check((await tailOf(5, 3, other.fpr, other.fpr.toLowerCase())).tail),
    undefined,
    'signed by an untrusted key',
  );
  assert.is(await check({ ...tail, text: tail.text.subarray(0, tail.text.length - 1) }), undefined, 'torn');
  assert.is(await check({ ...tail, text: Buffer.alloc(0) }), undefined, 'nothing new');
});

test.run();
