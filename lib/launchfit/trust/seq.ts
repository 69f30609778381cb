// SEQ on the host (docs/release.md): the highest SEQ of a signed VERSION this host handled is kept
// in state, and each VERSION is judged against it before anything is downloaded (lower refused,
// same file polled again, higher new even when it names a lower version).
// The whole story: docs/internals.md.
import type { VersionInfo } from '../../release/format/version-file.ts';
import type { LaunchState } from '../deploy-folder/state.ts';

export type SeqVerdict = { ok: true; downgradeAllowed: boolean } | { ok: false; message: string };

export function judgeSeq(state: Pick<LaunchState, 'seq'>, info: VersionInfo, signed: boolean): SeqVerdict {
  const last = state.seq;
  const seq = signed ? info.seq : undefined;
  if (seq === undefined) {
    if (last)
      return {
        ok: false,
        message:
          `VERSION has no ${signed ? '' : 'signed '}SEQ line, but this host accepted SEQ ` +
          `${last.seq} before; refusing a VERSION without SEQ (a downgrade of the protocol or a replay of an old ` +
          `VERSION). Publish with \`release publish\`, which writes SEQ.`,
      };
    return { ok: true, downgradeAllowed: false };
  }
  if (!last) return { ok: true, downgradeAllowed: false };
  if (seq < last.seq)
    return {
      ok: false,
      message:
        `VERSION has SEQ ${seq}, lower than SEQ ${last.seq} this host accepted; refusing a ` +
        `replayed or lowered VERSION (the current release keeps serving).`,
    };
  if (seq === last.seq) {
    if (info.file === last.file) return { ok: true, downgradeAllowed: false };
    return {
      ok: false,
      message:
        `VERSION has SEQ ${seq}, which this host already accepted for ${last.file}, but names ` +
        `${info.file}; refusing a replayed VERSION (the current release keeps serving).`,
    };
  }
  return { ok: true, downgradeAllowed: true };
}
