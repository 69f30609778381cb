// Markup escaping and bidi controls (lib/core/escape.ts): the five characters HTML cares about, and
// the controls that reorder text after them, shown as visible names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BIDI_CONTROLS, bidiName, escapeMarkup, showBidiControls, shownEscaped } from '../../../lib/core/escape.ts';

test('escapeMarkup: & < > " and \' become entities, nothing else changes', () => {
  assert.is(
    escapeMarkup(`<a href="x" title='y'>&amp;</a>`),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;',
  );
  assert.is(escapeMarkup('plain text, ünïcode, 😀'), 'plain text, ünïcode, 😀');
  assert.is(escapeMarkup(''), '');
});

test('escapeMarkup output never holds a raw markup character', () => {
  const hostile = "\"><script>alert(1)</script><img src=x onerror='a'>&";
  assert.not.match(escapeMarkup(hostile), /[<>"']|&(?!amp;|lt;|gt;|quot;|#39;)/);
});

test('bidi controls: every embedding, override and isolate is found and named', () => {
  const controls = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'];
  for (const c of controls) assert.is(c.match(BIDI_CONTROLS)?.length, 1, bidiName(c));
  assert.is(bidiName('\u202e'), 'U+202E');
  assert.is(bidiName('\u2066'), 'U+2066');
  assert.is('\u200f\u200e'.match(BIDI_CONTROLS), null, 'marks (LRM, RLM) do not reorder: left alone');
});

test('showBidiControls makes a Trojan Source name visible', () => {
  assert.is(showBidiControls('octo/\u202eetis\u2066'), 'octo/<U+202E>etis<U+2066>');
  assert.is(showBidiControls('octo/site'), 'octo/site');
});

test('shownEscaped: control characters are shown as escapes, for a terminal or a page', () => {
  assert.is(shownEscaped('v1\n\u001b[2J\u202e'), 'v1\\u000a\\u001b[2J\\u202e');
  assert.is(shownEscaped('plain/ref-1.0'), 'plain/ref-1.0');
});

test.run();
