// Provenance for `release publish`: APP-PLATFORM-V.intoto.jsonl, one DSSE envelope per line
// holding an in-toto Statement v1 with an SLSA provenance v1 predicate (the tarball's sha256,
// source repo, commit, ref, builder id, build start and end). The envelope's signature is a
// detached binary OpenPGP signature by the release key over PAE(payloadType, payload), as the
// DSSE protocol defines it. Written only when a source repo is known (flags or SHIPKIT_REPO).

export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';
export const BUILD_TYPE = 'https://shipkit.dev/release-publish/v1';

export interface SourceFacts {
  /** URL or owner/name of the source repository. */
  repo: string;
  /** Full ref, e.g. refs/tags/v1.2.0. */
  ref?: string;
  commit?: string;
  builderId: string;
  started: Date;
  finished: Date;
}

/** DSSE pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body (lengths in bytes). */
export function pae(payloadType: string, body: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/** The in-toto Statement v1 (SLSA provenance v1) for a release file and its sha256. */
export function provenanceStatement(file: string, sha256: string, facts: SourceFacts): Record<string, unknown> {
  const resolvedDependencies = [
    {
      uri: facts.repo.includes('://') ? facts.repo : `git+https://github.com/${facts.repo}`,
      ...(facts.commit ? { digest: { gitCommit: facts.commit } } : {}),
      ...(facts.ref ? { annotations: { ref: facts.ref } } : {}),
    },
  ];
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: file, digest: { sha256 } }],
    predicateType: PREDICATE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          source: {
            repository: facts.repo,
            ...(facts.ref ? { ref: facts.ref } : {}),
            ...(facts.commit ? { commit: facts.commit } : {}),
          },
        },
        resolvedDependencies,
      },
      runDetails: {
        builder: { id: facts.builderId },
        metadata: { startedOn: facts.started.toISOString(), finishedOn: facts.finished.toISOString() },
      },
    },
  };
}

/** One line of the .intoto.jsonl: the DSSE envelope, signed by `sign` over the PAE. */
export async function provenanceEnvelope(
  statement: unknown,
  keyid: string,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<string> {
  const body = Buffer.from(JSON.stringify(statement), 'utf8');
  const sig = await sign(pae(PAYLOAD_TYPE, body));
  return `${JSON.stringify({ payloadType: PAYLOAD_TYPE, payload: body.toString('base64'), signatures: [{ keyid, sig: Buffer.from(sig).toString('base64') }] })}\n`;
}

/**
 * Source facts from flags, else the environment `shipkit release` gives release.sh
 * (SHIPKIT_REPO, SHIPKIT_TAG or SHIPKIT_REF, SHIPKIT_SHA, SHIPKIT_BUILD_STARTED); undefined
 * without a source repo (no provenance is written then).
 */
export function sourceFacts(
  flags: { repo?: string; ref?: string; commit?: string; builderId?: string },
  env: NodeJS.ProcessEnv,
  started: Date,
  finished: Date,
): SourceFacts | undefined {
  const repo = flags.repo || env.SHIPKIT_REPO;
  if (!repo) return undefined;
  const ref = flags.ref || (env.SHIPKIT_TAG ? `refs/tags/${env.SHIPKIT_TAG}` : env.SHIPKIT_REF) || undefined;
  const envStart = env.SHIPKIT_BUILD_STARTED ? new Date(env.SHIPKIT_BUILD_STARTED) : undefined;
  return {
    repo,
    ref,
    commit: flags.commit || env.SHIPKIT_SHA || undefined,
    builderId: flags.builderId || 'https://shipkit.dev/release-publish',
    started: envStart && !Number.isNaN(envStart.getTime()) ? envStart : started,
    finished,
  };
}
