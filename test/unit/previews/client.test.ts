// `shipkit previews`' client: hook-server's address from listen:, ages, and the table and the
// one-preview view with every text from a forge escaped. Its requests: test/e2e/previews/cli.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ageOf,
  formatPreview,
  formatPreviewTable,
  hookServerUrl,
  type PreviewView,
} from '../../../lib/previews/client.ts';

const now = new Date('2026-11-20T12:00:00.000Z');
const view = (extra: Partial<PreviewView> = {}): PreviewView => ({
  repo: 'octo/site',
  pr: 42,
  name: 'pr-42',
  url: 'https://pr-42.preview.example.com/',
  head: '0123456789abcdef0123456789abcdef01234567',
  state: 'live',
  since: '2026-11-20T11:00:00.000Z',
  ...extra,
});

test('hookServerUrl: listen: as this machine reaches it', () => {
  assert.is(hookServerUrl('8080'), 'http://127.0.0.1:8080');
  assert.is(hookServerUrl('0.0.0.0:9000'), 'http://127.0.0.1:9000');
  assert.is(hookServerUrl('[::]:9000'), 'http://[::1]:9000');
  assert.is(hookServerUrl('10.0.0.5:80'), 'http://10.0.0.5:80');
});

test('ageOf: seconds, minutes, hours, days; a text that is no time is ?', () => {
  assert.is(ageOf('2026-11-20T11:59:30.000Z', now), '30 s');
  assert.is(ageOf('2026-11-20T11:15:00.000Z', now), '45 min');
  assert.is(ageOf('2026-11-20T09:00:00.000Z', now), '3 h');
  assert.is(ageOf('2026-11-17T12:00:00.000Z', now), '3 d');
  assert.is(ageOf('yesterday', now), '?');
});

test('formatPreviewTable: columns padded, HEAD in 7, control characters escaped', () => {
  const table = formatPreviewTable(
    [view(), view({ pr: 7, name: 'pr-7', state: 'failed\u001b[2J', url: null, since: '2026-11-18T12:00:00.000Z' })],
    now,
  );
  assert.is(
    table,
    'NAME   REPO       STATE            HEAD     AGE  URL\n' +
      'pr-42  octo/site  live             0123456  1 h  https://pr-42.preview.example.com/\n' +
      'pr-7   octo/site  failed\\u001b[2J  0123456  2 d  -\n',
  );
  assert.is(formatPreviewTable([], now), 'No previews.\n');
});

test('formatPreview: a line per field; reason and job only when there', () => {
  assert.is(
    formatPreview(view({ reason: 'waits\u202e', job: 'j-1', live_sha: 'f'.repeat(40) }), now),
    'preview: octo/site#42 (pr-42)\n' +
      'state:   live since 2026-11-20T11:00:00.000Z (1 h ago)\n' +
      'head:    0123456789abcdef0123456789abcdef01234567\n' +
      'url:     https://pr-42.preview.example.com/\n' +
      `live:    ${'f'.repeat(40)}\n` +
      'reason:  waits\\u202e\n' +
      'job:     j-1\n',
  );
  assert.not.match(formatPreview(view(), now), /reason|job|live:/);
});

test.run();
