// Provenance on the host (updates.provenance): APP-PLATFORM-V.intoto.jsonl beside the tarball,
// fetched bounded and checked before extraction: a DSSE envelope signed by a release key whose
// in-toto statement names the tarball's digest and the expected source and builder.
// The whole story: docs/internals.md.
import { VerificationError, messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, pae } from '../../release/format/provenance.ts';
import type { UpdatesConfig } from '../deploy-folder/config.ts';
import type { Timeouts } from '../../http/open-get.ts';
import { fetchSmall, type FetchFn } from '../update-server/requests.ts';
import { verifyDetachedSignature, type TrustedKeys } from './pgp.ts';

/** The metadata cap for a .intoto.jsonl. */
export const MAX_PROVENANCE_BYTES = 256 * 1024;
const MAX_ENVELOPES = 8;

export interface ProvenanceCheck {
  updates: Pick<UpdatesConfig, 'provenance' | 'provenanceSource' | 'provenanceBuilder'>;
  /** The tarball's URL; the provenance is beside it (.tar.gz → .intoto.jsonl). */
  url: string;
  file: string;
  sha256: string;
  trusted: TrustedKeys;
  timeouts: Timeouts;
  fetchImpl?: FetchFn;
  log: Logger;
  now?: Date;
}

/** `owner/name`, `https://github.com/owner/name(.git)` and `git+https://…` compare equal. */
export function normalizeRepo(repo: string): string {
  return repo
    .trim()
    .replace(/^git\+/, '')
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .replace(/^https?:\/\/github\.com\//i, '')
    .toLowerCase();
}

/** A ref against a glob: `*` matches any run of characters (slashes too), all else literally. */
export function refMatches(ref: string, glob: string): boolean {
  const re = new RegExp(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(ref);
}

/** What a verified provenance says of the release's source and builder. */
export interface ProvenanceFacts {
  repo: string;
  ref?: string;
  commit?: string;
  builder?: string;
}

/** Check the release's provenance per updates.provenance; throws VerificationError to refuse. Returns what was verified. */
export async function checkProvenance(c: ProvenanceCheck): Promise<ProvenanceFacts | undefined> {
  const mode = c.updates.provenance;
  if (mode === 'off') return undefined;
  const url = c.url.replace(/\.tar\.gz$/, '.intoto.jsonl');
  const res = await fetchSmall(url, { maxBytes: MAX_PROVENANCE_BYTES, timeouts: c.timeouts, fetchImpl: c.fetchImpl });
  if (res.status !== 'ok') {
    if (mode === 'required')
      throw new VerificationError(
        `${url} is missing; updates.provenance: required refuses a release without provenance (publish ` +
          `with \`release publish --source-repo …\`).`,
      );
    c.log.info('no provenance beside the release (updates.provenance: optional)', { file: c.file });
    return undefined;
  }
  const statement = await verifiedStatement(res.body, c, url);
  const source = matchStatement(statement, c, url);
  c.log.info('provenance verified', { file: c.file, ...source });
  return source;
}

function decodeBase64(text: unknown, what: string): Buffer {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(text))
    throw new VerificationError(`${what} is not base64.`);
  return Buffer.from(text, 'base64');
}

/** The statement of the first envelope whose signature over the PAE a trusted key made. */
async function verifiedStatement(body: Buffer, c: ProvenanceCheck, url: string): Promise<Record<string, any>> {
  const lines = body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim());
  if (!lines.length || lines.length > MAX_ENVELOPES)
    throw new VerificationError(
      `${url} holds ${lines.length} envelopes; expected 1 to ${MAX_ENVELOPES}. Refusing the release.`,
    );
  let firstError: unknown;
  for (const [i, line] of lines.entries()) {
    try {
      let envelope;
      try {
        envelope = JSON.parse(line);
      } catch {
        throw new VerificationError(`line ${i + 1} is not JSON`);
      }
      if (envelope?.payloadType !== PAYLOAD_TYPE)
        throw new VerificationError(`line ${i + 1}: payloadType must be ${PAYLOAD_TYPE}`);
      const payload = decodeBase64(envelope.payload, `line ${i + 1}: payload`);
      if (
        !Array.isArray(envelope.signatures) ||
        !envelope.signatures.length ||
        envelope.signatures.length > MAX_ENVELOPES
      )
        throw new VerificationError(`line ${i + 1}: signatures must be a list of 1 to ${MAX_ENVELOPES}`);
      const signed = pae(PAYLOAD_TYPE, payload);
      let verified = false;
      for (const s of envelope.signatures) {
        try {
          await verifyDetachedSignature({
            data: signed,
            signature: decodeBase64(s?.sig, `line ${i + 1}: sig`),
            trusted: c.trusted,
            what: `the provenance of ${c.file}`,
            now: c.now,
          });
          verified = true;
          break;
        } catch (error) {
          firstError ??= error;
        }
      }
      if (!verified) continue;
      try {
        return JSON.parse(payload.toString('utf8'));
      } catch {
        throw new VerificationError(`line ${i + 1}: the payload is not a JSON statement`);
      }
    } catch (error) {
      firstError ??= error;
    }
  }
  throw new VerificationError(
    `${url} is not a valid provenance signed by a trusted key (${messageOf(firstError)}); refusing the release.`,
  );
}

/** The statement must name this tarball's sha256, the configured source repo and ref, and builder. */
function matchStatement(s: Record<string, any>, c: ProvenanceCheck, url: string): ProvenanceFacts {
  const refuse = (why: string) => new VerificationError(`${url}: ${why}; refusing the release.`);
  if (s?._type !== STATEMENT_TYPE || s.predicateType !== PREDICATE_TYPE)
    throw refuse(`not an in-toto ${STATEMENT_TYPE} with a ${PREDICATE_TYPE} predicate`);
  const subjects: any[] = Array.isArray(s.subject) ? s.subject : [];
  if (
    !subjects.some(
      (x) => typeof x?.digest?.sha256 === 'string' && x.digest.sha256.toLowerCase() === c.sha256.toLowerCase(),
    )
  ) {
    throw refuse(
      `it is for another digest (sha256 ${subjects.map((x) => x?.digest?.sha256).join(', ') || 'none'}), ` +
        `not ${c.file} (sha256 ${c.sha256})`,
    );
  }
  const source = s.predicate?.buildDefinition?.externalParameters?.source ?? {};
  const repo = typeof source.repository === 'string' ? source.repository : '';
  const ref = typeof source.ref === 'string' ? source.ref : undefined;
  const want = c.updates.provenanceSource;
  if (want?.repo && normalizeRepo(repo) !== normalizeRepo(want.repo))
    throw refuse(
      `it was built from repo ${JSON.stringify(repo)}, not updates.provenance_source.repo ${JSON.stringify(want.repo)}`,
    );
  if (want?.ref && (ref === undefined || !refMatches(ref, want.ref)))
    throw refuse(
      `it was built from ref ${JSON.stringify(ref ?? 'none')}, which does not match ` +
        `updates.provenance_source.ref ${JSON.stringify(want.ref)}`,
    );
  const builderId = s.predicate?.runDetails?.builder?.id;
  const builder = typeof builderId === 'string' ? builderId : undefined;
  const wantBuilder = c.updates.provenanceBuilder;
  if (wantBuilder !== undefined && builder !== wantBuilder)
    throw refuse(
      `it was built by builder ${JSON.stringify(builder ?? 'none')}, not updates.provenance_builder ${JSON.stringify(wantBuilder)}`,
    );
  return { repo, ref, commit: typeof source.commit === 'string' ? source.commit : undefined, builder };
}
