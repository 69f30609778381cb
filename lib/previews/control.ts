// What hook-server's preview runner lets the HTTP routes and `shipkit previews` do: list the
// previews, approve a pull request's head, build it again, tear it down, read its log. The runner
// (lib/previews/runner.ts) implements it; the routes (lib/web/previews-routes.ts) call it.
import { WorkError } from '../core/errors.ts';
import type { PreviewRecord } from './store.ts';

/** No preview is known for this repo and pull request (HTTP 404). */
export class PreviewNotFound extends WorkError {
  override name = 'PreviewNotFound';
}

export interface PreviewControl {
  /** Every preview known, newest change first (torn-down ones included). */
  list(): PreviewRecord[];
  /** Approves the preview's current head SHA (an older head's approval never carries over) and builds it. */
  approve(repo: string, pr: number, by: string): Promise<PreviewRecord>;
  /** Builds the preview's head again (a failed or live one). */
  rebuild(repo: string, pr: number): Promise<PreviewRecord>;
  /** Tears the preview down now: process, route, folder (and database). */
  remove(repo: string, pr: number, why: string): Promise<PreviewRecord>;
  /** Its state and reason, then the end of its build log, as text (the link a failed preview's status carries). */
  log(repo: string, pr: number): Promise<string>;
}
