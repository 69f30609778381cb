// An audit entry as a terminal line: control characters from requests written as \u escapes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditText, detailText } from '../../../lib/audit/show.ts';
import type { AuditEntry } from '../../../lib/audit/chain.ts';

test('newlines, ESC and bidi controls in subject, actor and detail are shown, never sent', () => {
  const e: AuditEntry = {
    n: 7,
    prev: '0'.repeat(64),
    at: '2026-01-01T00:00:00.000Z',
    action: 'delivery.replay_refused',
    actor: 'cli root@ci',
    from: 'local',
    node: 'a',
    subject: 'octo/../evil\n\u001b[2J\u202e',
    detail: { reason: 'x\ny', user: '\u009b31m' },
  };
  const line = auditText(e);
  assert.not.match(line, /[\u0000-\u001f\u007f-\u009f\u202e]/);
  assert.match(line, 'octo/../evil\\u000a\\u001b[2J\\u202e');
  assert.match(line, 'reason="x\\ny"');
  assert.match(line, 'user="\\u009b31m"');
  assert.match(line, '    7  2026-01-01T00:00:00.000Z  delivery.replay_refused  cli root@ci  from local  on a');
  assert.is(detailText(null), '');
});

test.run();
