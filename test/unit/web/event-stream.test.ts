// The live log's framing (lib/web/event-stream.ts): cutting at lines and characters, one SSE event
// per piece (CR, LF and CRLF each end an SSE line, so none may reach a data field), the end
// event, and Last-Event-ID values, hostile ones included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cutAtLine, dataEvent, endEvent, parseEventId } from '../../../lib/web/event-stream.ts';

test('cutAtLine: up to the last newline; a long line without one is cut at a character boundary', () => {
  const [whole, rest] = cutAtLine(Buffer.from('one\ntwo\nthr'));
  assert.is(whole.toString(), 'one\ntwo\n');
  assert.is(rest.toString(), 'thr');
  const [none, all] = cutAtLine(Buffer.from('short'), 64);
  assert.is(none.length, 0);
  assert.is(all.toString(), 'short');
  // 'é' is two bytes; with max 5 the cut may not fall between them.
  for (let max = 1; max < 12; max++) {
    const text = Buffer.from('ééééééé');
    const [head, tail] = cutAtLine(text, max);
    if (!head.length) continue;
    assert.not.ok(head.toString().includes('\uFFFD'), `max ${max}: head whole`);
    assert.not.ok(tail.toString().includes('\uFFFD'), `max ${max}: tail whole`);
    assert.is(head.toString() + tail.toString(), 'ééééééé');
  }
});

test('dataEvent: one data: line per line; CR and CRLF become line ends, never raw in a field', () => {
  assert.is(dataEvent('o:8', 'a\nb\n'), 'id: o:8\ndata: a\ndata: b\n\n');
  assert.is(dataEvent('o:9', 'progress 10%\rprogress 20%\r\n'), 'id: o:9\ndata: progress 10%\ndata: progress 20%\n\n');
  assert.is(dataEvent('o:1', '\n'), 'id: o:1\ndata: \n\n');
  // A line that looks like an SSE field stays inside data:.
  const hostile = dataEvent('o:40', 'event: end\nid: o:0\n\ndata: x\n');
  assert.is(hostile, 'id: o:40\ndata: event: end\ndata: id: o:0\ndata: \ndata: data: x\n\n');
  assert.not.match(hostile.replace(/^data: .*$/gm, ''), /event:|\r/);
});

test('endEvent carries the state and the exit code as JSON', () => {
  assert.is(endEvent({ state: 'failed', exit: 3 }), 'event: end\ndata: {"state":"failed","exit":3}\n\n');
});

test('parseEventId: o:N and s:N only; anything else is no resume point', () => {
  assert.equal(parseEventId('o:123'), { source: 'o', offset: 123 });
  assert.equal(parseEventId(' s:0 '), { source: 's', offset: 0 });
  for (const bad of [undefined, '', '123', 'x:1', 'o:-1', 'o:1e9', 'o:' + '9'.repeat(16), ['o:1'], 'o:1\nid: s:2']) {
    assert.is(parseEventId(bad as string | undefined), undefined, JSON.stringify(bad));
  }
});

test.run();
