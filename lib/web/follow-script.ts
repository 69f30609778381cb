// The status page's one script, /assets/log-follow.js (script-src 'self', no framework): on a running
// job's page it follows the log live through an EventSource and adds text nodes only.
// The whole story: docs/internals.md.
import { registerAsset } from './assets.ts';

export const FOLLOW_SCRIPT =
  `'use strict';
(function () {
  var box = document.querySelector('[data-follow]');
  if (!box || typeof EventSource !== 'function') return;
  var pre = box.querySelector('pre') || box.appendChild(document.createElement('pre'));
  var hint = box.previousElementSibling;
  var label = document.querySelector('h2 .state');
  var MAX_CHARS = 2000000;
  var shown = 0;
  var fresh = true;
  function setLabel(state) {
    if (!label) return;
    label.className = 'state state-' + state.replace(/[^a-z]/g, '');
    label.textContent = state;
  }
  function clear() {
    pre.textContent = '';
    shown = 0;
  }
  function append(text) {
    var el = document.scrollingElement || document.documentElement;
    var atBottom = el.scrollTop + window.innerHeight >= el.scrollHeight - 40;
    pre.appendChild(document.createTextNode(text));
    shown += text.length;
    // A very long log keeps its end: the oldest text nodes go.
    while (shown > MAX_CHARS && pre.firstChild && pre.firstChild !== pre.lastChild) {
      shown -= pre.firstChild.textContent.length;
      pre.removeChild(pre.firstChild);
    }
    if (atBottom) el.scrollTop = el.scrollHeight;
  }
  var source = new EventSource(box.getAttribute('data-follow'));
  if (hint && hint.tagName === 'P') hint.textContent = 'Following the log live.';
  source.onmessage = function (event) {
    // The stream starts from the beginning of the log: it replaces what the server rendered.
    if (fresh) { clear(); fresh = false; }
    append(event.data + '\\n');
  };
  source.addEventListener('reset', function () { clear(); fresh = false; });
  source.addEventListener('end', function (event) {
    source.close();
    var end = {};
    try { end = JSON.parse(event.data); } catch (e) { /* keep the label */ }
    if (typeof end.state === 'string') setLabel(end.state);
    if (hint && hint.tagName === 'P') hint.textContent = 'The job has ended' + (end.state ? ' (' + end.state + ')' : '') + '.';
    setTimeout(function () { window.location.reload(); }, 1500);
  });
  source.onerror = function () {
    // CONNECTING: the browser retries by itself (and resumes with Last-Event-ID). CLOSED: refused.
    if (source.readyState === EventSource.CLOSED && hint && hint.tagName === 'P') hint.textContent = 'The ` +
  `live log stopped; reload the page to see more.';
  };
})();
`;

/** Serve the script at /assets/log-follow.js (the job page links it when the asset exists). */
export function registerFollowScript(): void {
  registerAsset('log-follow.js', 'text/javascript; charset=utf-8', FOLLOW_SCRIPT);
}
