// The read API's bearer check (lib/http/bearer.ts): the header's form, the token compared, and the
// two reasons a request is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bearerProblem } from '../../../lib/http/bearer.ts';

const TOKEN = 'tok-0123456789abcdef';

test('the right token, in any case of "Bearer", passes', () => {
  assert.is(bearerProblem(`Bearer ${TOKEN}`, TOKEN), undefined);
  assert.is(bearerProblem(`bearer ${TOKEN}`, TOKEN), undefined);
  assert.is(bearerProblem(`Bearer   ${TOKEN}`, TOKEN), undefined);
});

test('no header, another scheme or a malformed one: no bearer token', () => {
  for (const header of [undefined, '', 'Basic dXNlcjpwYXNz', TOKEN, 'Bearer', `Bearer ${TOKEN} extra`])
    assert.is(bearerProblem(header, TOKEN), 'no bearer token', String(header));
  assert.is(bearerProblem([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`], TOKEN), 'no bearer token', 'repeated headers');
});

test('a wrong token, a prefix of it or a longer one: wrong token', () => {
  for (const token of ['nope', TOKEN.slice(0, -1), `${TOKEN}0`, TOKEN.toUpperCase()])
    assert.is(bearerProblem(`Bearer ${token}`, TOKEN), 'wrong token', token);
});

test.run();
