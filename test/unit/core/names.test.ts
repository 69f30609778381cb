// Names that become paths (lib/core/names.ts): every hostile name from issue 2 is refused with a
// ValidationError that says why; plain names pass; resolveInside never leaves its root.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import { MAX_NAME_LENGTH, nameProblem, resolveInside, validateFullName, validateName } from '../../../lib/core/names.ts';

function throwsValidation(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a ValidationError');
}

const valid = ['site', 'my-app_2.js', 'A1', '_private', 'v1.2.3', 'x'.repeat(MAX_NAME_LENGTH), '007', 'a-', 'a.'];

for (const name of valid) {
  test(`valid name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}… (${name.length})` : name)}`, () => {
    assert.is(nameProblem(name), undefined);
    assert.is(validateName(name, 'repository'), name);
  });
}

// [label, name, why]
const invalid: Array<[string, unknown, RegExp]> = [
  ['../etc', '../etc', /may only hold|must not contain/],
  ['a/b', 'a/b', /may only hold/],
  ['.hidden', '.hidden', /must not start with "\."/],
  ['.', '.', /must not start with "\."/],
  ['..', '..', /must not start with "\."|must not contain/],
  ['-rf', '-rf', /must not start with .* "-"/],
  ['empty', '', /is empty/],
  ['undefined', undefined, /is empty/],
  ['a number', 42, /is empty/],
  ['300 characters', 'a'.repeat(300), /longer than 100 characters/],
  ['101 characters', 'a'.repeat(101), /longer than 100 characters/],
  ['x;rm -rf /', 'x;rm -rf /', /may only hold/],
  ['x NUL', 'x\0', /may only hold/],
  ['x%00 as sent', 'x%00', /may only hold/],
  ['%2e%2e%2f as sent', '%2e%2e%2f', /may only hold/],
  ['%2e%2e%2f decoded', decodeURIComponent('%2e%2e%2f'), /may only hold|must not/],
  ['%2e%2e decoded (no slash)', decodeURIComponent('%2e%2e'), /must not start with "\."|must not contain/],
  ['a..b', 'a..b', /must not contain "\.\."/],
  ['Cyrillic а in "sitа"', 'sit\u0430', /may only hold/],
  ['Cyrillic е in "sitе"', 'sit\u0435', /may only hold/],
  ['full-width solidus ／', 'a\uff0fb', /may only hold/],
  ['division slash U+2215', 'a\u2215b', /may only hold/],
  ['full-width dots ．．', '\uff0e\uff0e', /may only hold/],
  ['space', 'my site', /may only hold/],
  ['newline', 'site\n', /may only hold/],
  ['backslash', 'a\\b', /may only hold/],
  ['accented letter', 'café', /may only hold/],
  ['shell $()', '$(id)', /may only hold/],
  ['tilde', '~root', /may only hold/],
];

for (const [label, name, why] of invalid) {
  test(`invalid name: ${label}`, () => {
    const problem = nameProblem(name);
    assert.type(problem, 'string');
    assert.match(problem!, why);
    throwsValidation(() => validateName(name, 'repository'), new RegExp(`^Invalid repository .*: it (?:.* )?(?:${why.source})`));
  });
}

test('the message quotes the name safely: NUL and newlines escaped, long names shortened', () => {
  throwsValidation(() => validateName('x\0', 'app'), /^Invalid app "x\\u0000": it /);
  throwsValidation(() => validateName('a\nb'), /^Invalid name "a\\nb": it /);
  try {
    validateName('a'.repeat(300));
  } catch (error) {
    const message = (error as Error).message;
    assert.ok(message.length < 200, `message is short: ${message.length}`);
    assert.match(message, /\.\.\."/);
  }
});

const fullNames: Array<[string, boolean]> = [
  ['octo/site', true],
  ['site', true],
  ['Octo-Org/my.site_2', true],
  ['a/b/c', false],
  ['/site', false],
  ['octo/', false],
  ['octo//site', false],
  ['octo/../x', false],
  ['../octo/site', false],
  ['octo/.git', false],
  ['octo/-rf', false],
  ['', false],
  ['octo\\site', false],
  ['octo\uff0fsite', false],
  ['octo\u2215site', false],
];

for (const [name, ok] of fullNames) {
  test(`validateFullName ${JSON.stringify(name)} → ${ok ? 'ok' : 'refused'}`, () => {
    if (ok) assert.is(validateFullName(name), name);
    else throwsValidation(() => validateFullName(name), /^Invalid repository /);
  });
}

const root = path.resolve('/srv/shipkit/root');

const inside: Array<[string, string]> = [
  ['a', 'a'],
  ['a/b/c', 'a/b/c'],
  ['./a', 'a'],
  ['a//b', 'a/b'],
  ['a/./b/', 'a/b'],
  ['.hidden', '.hidden'],
  ['a..b', 'a..b'],
  ['...', '...'],
];

for (const [relative, want] of inside) {
  test(`resolveInside ${JSON.stringify(relative)} stays inside`, () => {
    assert.is(resolveInside(root, relative), path.join(root, want));
  });
}

const outside: Array<[string, string, RegExp]> = [
  ['absolute', '/etc/passwd', /must be relative/],
  ['absolute inside the root itself', `${root}/a`, /must be relative/],
  ['drive letter', 'C:/Windows', /must be relative/],
  ['..', '..', /must not contain "\.\."/],
  ['../x', '../x', /must not contain "\.\."/],
  ['nested escape a/../../x', 'a/../../x', /must not contain "\.\."/],
  ['harmless-looking a/../b', 'a/../b', /must not contain "\.\."/],
  ['backslash ..\\x', '..\\x', /must not contain "\.\."/],
  ['sibling with same prefix', '../root-evil/x', /must not contain "\.\."/],
  ['NUL', 'a\0b', /contains a NUL byte/],
  ['NUL after ..', '..\0', /contains a NUL byte/],
  ['empty', '', /is empty/],
  ['the root itself (.)', '.', /leaves/],
  ['the root itself (./)', './', /leaves/],
];

for (const [label, relative, why] of outside) {
  test(`resolveInside refuses ${label}`, () => {
    throwsValidation(() => resolveInside(root, relative, 'destination'), new RegExp(`^Invalid destination.*(?:${why.source})`));
  });
}

test('resolveInside works with a relative or trailing-slash root', () => {
  assert.is(resolveInside('some/root/', 'x'), path.resolve('some/root/x'));
  throwsValidation(() => resolveInside('some/root/', '../root2/x'), /\.\./);
});

test('resolveInside under the root folder / itself', () => {
  assert.is(resolveInside('/', 'srv/site'), '/srv/site');
  throwsValidation(() => resolveInside('/', '.'), /leaves/);
  throwsValidation(() => resolveInside('/', '../x'), /\.\./);
});

test.run();
