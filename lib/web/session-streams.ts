// Responses a status-page session keeps open (a job's log followed live, `?follow=1`) end with
// the session: cut at once when it is logged out here, and found by a check every `checkMs` when
// it expires or is ended by another process (`hook-server --end-sessions`). A cut stream is
// destroyed, as a dropped follower is: the browser's EventSource reconnects with the same cookie,
// is refused, and the page says the live log stopped.
import type { ServerResponse } from 'node:http';
import type { Session } from './session.ts';

export interface SessionStreams {
  /** Keep `res` only as long as `session` lasts. */
  hold(session: Session, res: ServerResponse): void;
  /** Cut every stream of this session now (its logout). */
  end(id: string): void;
  /** Streams held now (tests). */
  size(): number;
}

export interface SessionStreamsOptions {
  /** Whether the session is over: expired, or ended since (lib/web/ended-sessions.ts). */
  isOver: (session: Session) => boolean;
  /** How often held sessions are checked; the check runs only while some stream is held. */
  checkMs?: number;
}

export function createSessionStreams({ isOver, checkMs = 1_000 }: SessionStreamsOptions): SessionStreams {
  const held = new Map<string, { session: Session; streams: Set<ServerResponse> }>();
  let timer: NodeJS.Timeout | undefined;

  const stopChecking = () => {
    if (held.size > 0 || !timer) return;
    clearInterval(timer);
    timer = undefined;
  };
  const end = (id: string) => {
    const entry = held.get(id);
    if (!entry) return;
    held.delete(id);
    for (const res of entry.streams) res.destroy();
    stopChecking();
  };
  const check = () => {
    for (const { session } of [...held.values()]) if (isOver(session)) end(session.id);
  };

  return {
    hold(session, res) {
      if (res.destroyed) return;
      let entry = held.get(session.id);
      if (!entry) held.set(session.id, (entry = { session, streams: new Set() }));
      const streams = entry.streams;
      streams.add(res);
      res.once('close', () => {
        streams.delete(res);
        if (streams.size === 0 && held.get(session.id)?.streams === streams) held.delete(session.id);
        stopChecking();
      });
      if (!timer) {
        timer = setInterval(check, checkMs);
        timer.unref();
      }
    },
    end,
    size: () => [...held.values()].reduce((n, e) => n + e.streams.size, 0),
  };
}
