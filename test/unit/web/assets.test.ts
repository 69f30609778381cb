// The status page's static files (lib/web/assets.ts): the stylesheet and icon built in, each with
// a strong ETag that follows its bytes, and unknown names not served.
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assetNamed, registerAsset } from '../../../lib/web/assets.ts';

test('the stylesheet and the icon are there with their types', () => {
  assert.is(assetNamed('shipkit.css')?.type, 'text/css; charset=utf-8');
  assert.match(assetNamed('shipkit.css')!.body, /color-scheme: light dark/);
  assert.is(assetNamed('favicon.svg')?.type, 'image/svg+xml');
  assert.match(assetNamed('favicon.svg')!.body, /^<svg /);
});

test('a strong ETag that changes with the bytes, and only then', () => {
  registerAsset('t.txt', 'text/plain', 'one');
  const first = assetNamed('t.txt')!.etag;
  assert.match(first, /^"[^"]+"$/, 'quoted, not weak');
  registerAsset('t.txt', 'text/plain', 'one');
  assert.is(assetNamed('t.txt')!.etag, first);
  registerAsset('t.txt', 'text/plain', 'two');
  assert.is.not(assetNamed('t.txt')!.etag, first);
  const css = assetNamed('shipkit.css')!;
  assert.is.not(css.etag, assetNamed('favicon.svg')!.etag);
  assert.ok(createHash('sha256').update(css.body).digest('hex').length === 64);
});

test('names that are not assets are not served', () => {
  for (const name of ['', 'nope.css', '../assets.ts', 'shipkit.css/', 'SHIPKIT.CSS'])
    assert.is(assetNamed(name), undefined, name);
});

test.run();
