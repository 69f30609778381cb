// Which requests for /jobs/ID get the HTML job page: a browser's navigation, not curl or fetch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prefersHtml } from '../../../lib/web/page-routes.ts';

test('prefersHtml: browsers yes; */*, JSON, ties and nothing no', () => {
  const cases: Array<[string | undefined, boolean]> = [
    ['text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8', true],
    ['text/html', true],
    ['*/*', false],
    [undefined, false],
    ['application/json', false],
    ['text/html, application/json', false],
    ['application/json;q=0.5, text/html', true],
    ['text/html;q=0.5, */*', false],
    ['text/html;q=abc', false],
    ['text/event-stream', false],
  ];
  for (const [accept, expected] of cases) assert.is(prefersHtml(accept), expected, String(accept));
});

test.run();
