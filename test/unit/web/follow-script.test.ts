// The status page's one script (lib/web/follow-script.ts): served at /assets/log-follow.js, it
// parses as a script, and it writes the log into the page as text only: no innerHTML, no eval, no
// script built from strings, so a build's output cannot run in a reader's browser.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assetNamed } from '../../../lib/web/assets.ts';
import { FOLLOW_SCRIPT, registerFollowScript } from '../../../lib/web/follow-script.ts';

test('registered as /assets/log-follow.js, as JavaScript', () => {
  registerFollowScript();
  const asset = assetNamed('log-follow.js');
  assert.is(asset?.type, 'text/javascript; charset=utf-8');
  assert.is(asset?.body, FOLLOW_SCRIPT);
});

test('it parses, in strict mode', () => {
  assert.ok(FOLLOW_SCRIPT.startsWith("'use strict';"));
  assert.not.throws(() => new Function(FOLLOW_SCRIPT));
});

test('log text goes in as text nodes only; nothing is evaluated or parsed as HTML', () => {
  assert.match(FOLLOW_SCRIPT, /createTextNode\(text\)/);
  for (const sink of [
    /innerHTML/,
    /outerHTML/,
    /insertAdjacentHTML/,
    /document\.write/,
    /\beval\(/,
    /new Function/,
    /setTimeout\(['"`]/,
  ])
    assert.not.match(FOLLOW_SCRIPT, sink, String(sink));
});

test('it follows the path the page names, and stops at the end event', () => {
  assert.match(FOLLOW_SCRIPT, /new EventSource\(box\.getAttribute\('data-follow'\)\)/);
  assert.match(FOLLOW_SCRIPT, /addEventListener\('end'[\s\S]*source\.close\(\)/);
});

test.run();
