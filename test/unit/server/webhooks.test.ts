import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import {
  bodyFormat,
  deliveryId,
  detectForge,
  normaliseEvent,
  parsePayload,
  verifyDelivery,
  verifyGiteaForm,
} from '../../../lib/server/webhooks.ts';
import { validateRefName } from '../../../lib/core/names.ts';
import {
  githubSignature,
  opensslHex,
  pingPayload,
  pushPayload,
  releasePayload,
  tagPushPayload,
} from '../../fixtures/hooks/deliveries.ts';

const SECRET = "It's a Secret to Everybody";
const body = JSON.stringify(pushPayload('octo/site'));
const buf = Buffer.from(body);

test('detectForge: Gitea (which also sends X-GitHub-Event) before GitHub; GitLab; none', () => {
  assert.is(detectForge({ 'x-github-event': 'push' }), 'github');
  assert.is(detectForge({ 'x-github-event': 'push', 'x-gitea-event': 'push' }), 'gitea');
  assert.is(detectForge({ 'x-forgejo-event': 'push' }), 'gitea');
  assert.is(detectForge({ 'x-gogs-event': 'push' }), 'gitea');
  assert.is(detectForge({ 'x-gitlab-event': 'Push Hook' }), 'gitlab');
  assert.is(detectForge({ 'content-type': 'application/json' }), undefined);
});

test('GitHub X-Hub-Signature-256 made by @octokit/webhooks-methods verifies', async () => {
  const sig = await githubSignature(SECRET, body);
  const verdict = verifyDelivery('github', { 'x-hub-signature-256': sig }, buf, [SECRET]);
  assert.equal(verdict, { ok: true, secret: SECRET });
  // Upper-case hex is the same signature.
  assert.ok(
    verifyDelivery('github', { 'x-hub-signature-256': `sha256=${sig.slice(7).toUpperCase()}` }, buf, [SECRET]).ok,
  );
});

const refusals: Array<[string, Record<string, string>, RegExp]> = [
  ['missing signature', {}, /missing signature/],
  ['SHA-1 only', { 'x-hub-signature': 'sha1=0123456789abcdef0123456789abcdef01234567' }, /SHA-1/],
  ['wrong secret', { 'x-hub-signature-256': `sha256=${opensslHex('wrong', body)}` }, /does not match/],
  [
    'signature over another body',
    { 'x-hub-signature-256': `sha256=${opensslHex(SECRET, `${body} `)}` },
    /does not match/,
  ],
  ['malformed', { 'x-hub-signature-256': 'sha256=zz' }, /malformed/],
  ["bare hex is not GitHub's format", { 'x-hub-signature-256': opensslHex(SECRET, body) }, /malformed/],
];
for (const [name, headers, reason] of refusals) {
  test(`GitHub refuses: ${name}`, () => {
    const verdict = verifyDelivery('github', headers, buf, [SECRET]);
    assert.is(verdict.ok, false);
    if (!verdict.ok) assert.match(verdict.reason, reason);
  });
}

test('Gitea/Forgejo/Gogs bare hex signature (openssl) verifies; a wrong one does not', () => {
  for (const name of ['x-gitea-signature', 'x-forgejo-signature', 'x-gogs-signature']) {
    assert.ok(verifyDelivery('gitea', { [name]: opensslHex(SECRET, body) }, buf, [SECRET]).ok, name);
    assert.not.ok(verifyDelivery('gitea', { [name]: opensslHex('nope', body) }, buf, [SECRET]).ok, name);
  }
  assert.not.ok(verifyDelivery('gitea', {}, buf, [SECRET]).ok);
});

// Gitea/Forgejo/Gogs sign the JSON payload even when they send it form-encoded (services/webhook/
// deliver.go: the HMAC is over t.PayloadContent, the body is url.Values{"payload": ...}.Encode()).
const giteaJson = readFileSync('/work/shared/forge-payloads/gitea-push-event.json', 'utf8');
const giteaForm = Buffer.from(new URLSearchParams({ payload: giteaJson }).toString());
const giteaHeaders = {
  'x-gitea-signature': opensslHex(SECRET, giteaJson),
  'x-hub-signature-256': `sha256=${opensslHex(SECRET, giteaJson)}`,
};

test('Gitea form delivery (real payload): the signature over the JSON in payload= verifies', () => {
  assert.equal(verifyGiteaForm(giteaHeaders, giteaForm, [SECRET]), { ok: true, secret: SECRET });
  assert.ok(verifyGiteaForm({ 'x-forgejo-signature': opensslHex(SECRET, giteaJson) }, giteaForm, [SECRET]).ok);
  // The form body itself is not what Gitea signed.
  assert.not.ok(verifyDelivery('gitea', giteaHeaders, giteaForm, [SECRET]).ok);
});

const giteaFormRefusals: Array<[string, Buffer, RegExp]> = [
  [
    'payload changed',
    Buffer.from(new URLSearchParams({ payload: giteaJson.replace('refs/heads/master', 'refs/heads/evil') }).toString()),
    /does not match/,
  ],
  ['a second payload= field', Buffer.from(`${giteaForm}&payload=%7B%7D`), /exactly one payload/],
  ['no payload= field', Buffer.from('ref=refs%2Fheads%2Fmaster'), /exactly one payload/],
  ['the JSON body, not a form', Buffer.from(giteaJson), /exactly one payload/],
];
for (const [name, form, reason] of giteaFormRefusals) {
  test(`Gitea form delivery refused: ${name}`, () => {
    const verdict = verifyGiteaForm(giteaHeaders, form, [SECRET]);
    assert.is(verdict.ok, false);
    if (!verdict.ok) assert.match(verdict.reason, reason);
  });
}

test('GitLab X-Gitlab-Token: equal → ok, else refused', () => {
  assert.equal(verifyDelivery('gitlab', { 'x-gitlab-token': SECRET }, buf, [SECRET]), { ok: true, secret: SECRET });
  assert.not.ok(verifyDelivery('gitlab', { 'x-gitlab-token': `${SECRET}x` }, buf, [SECRET]).ok);
  assert.not.ok(verifyDelivery('gitlab', {}, buf, [SECRET]).ok);
});

test('several candidate secrets: the one that signed is reported; no secrets → refused', () => {
  const verdict = verifyDelivery('gitea', { 'x-gitea-signature': opensslHex('repo-secret', body) }, buf, [
    SECRET,
    'repo-secret',
  ]);
  assert.equal(verdict, { ok: true, secret: 'repo-secret' });
  assert.not.ok(verifyDelivery('github', { 'x-hub-signature-256': `sha256=${opensslHex(SECRET, body)}` }, buf, []).ok);
});

test('bodyFormat: JSON and form; anything else refused', () => {
  assert.is(bodyFormat('application/json'), 'json');
  assert.is(bodyFormat('application/json; charset=utf-8'), 'json');
  assert.is(bodyFormat('application/x-www-form-urlencoded'), 'form');
  for (const type of ['text/plain', 'multipart/form-data; boundary=x', '', undefined])
    assert.is(bodyFormat(type), undefined, String(type));
});

const badBodies: Array<[string, string, 'json' | 'form', RegExp]> = [
  ['truncated JSON', body.slice(0, body.length / 2), 'json', /not valid JSON/],
  ['JSON array', '[1,2]', 'json', /not a JSON object/],
  ['JSON string', '"push"', 'json', /not a JSON object/],
  ['JSON null', 'null', 'json', /not a JSON object/],
  ['form without payload=', 'foo=bar', 'form', /payload=/],
  ['form with two payload= fields', 'payload=%7B%7D&payload=%7B%7D', 'form', /payload=/],
  ['form with broken payload', 'payload=%7B', 'form', /not valid JSON/],
];
for (const [name, text, format, message] of badBodies) {
  test(`parsePayload refuses ${name}`, () => {
    try {
      parsePayload(Buffer.from(text), format);
      assert.unreachable('should throw');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  });
}

test('parsePayload reads a form body payload=', () => {
  const form = new URLSearchParams({ payload: body }).toString();
  assert.is(parsePayload(Buffer.from(form), 'form').ref, 'refs/heads/main');
});

test('normaliseEvent: push, release published, ping (real octokit examples)', () => {
  assert.equal(normaliseEvent('github', 'push', pushPayload('octo/site', { sha: 'b'.repeat(40) })), {
    kind: 'push',
    repo: 'octo/site',
    ref: 'refs/heads/main',
    branch: 'main',
    sha: 'b'.repeat(40),
    cloneUrl: 'https://github.com/octo/site.git',
    order: { pushedAt: 1557933657, forced: false },
    meta: {
      message: 'Initial commit',
      author: 'Codertocat',
      pusher: 'Codertocat',
      commitUrl: 'https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246',
    },
  });
  assert.equal(normaliseEvent('github', 'release', releasePayload('octo/site', { tag: 'v2.0' })), {
    kind: 'release',
    repo: 'octo/site',
    tag: 'v2.0',
    ref: 'refs/tags/v2.0',
    cloneUrl: 'https://github.com/octo/site.git',
    meta: {
      author: 'Codertocat',
      pusher: 'Codertocat',
      commitUrl: 'https://github.com/Codertocat/Hello-World/releases/tag/0.0.1',
    },
  });
  assert.equal(normaliseEvent('github', 'ping', pingPayload('octo/site')), { kind: 'ping', repo: 'octo/site' });
});

test('normaliseEvent: ignored with a reason (tag push, unpublished release, deleted branch, other events)', () => {
  const cases: Array<[string, unknown]> = [
    ['push', tagPushPayload('octo/site')],
    ['release', releasePayload('octo/site', { action: 'created' })],
    ['push', { ...pushPayload('octo/site'), deleted: true, after: '0'.repeat(40) }],
    ['issues', { action: 'opened' }],
  ];
  for (const [event, payload] of cases) {
    const result = normaliseEvent('github', event, payload as Record<string, unknown>);
    assert.is(result.kind, 'ignored', event);
    if (result.kind === 'ignored') assert.ok(result.reason.length > 3);
  }
});

const malformed: Array<[string, Record<string, unknown>, RegExp]> = [
  ['no repository', { ...pushPayload('octo/site'), repository: undefined }, /no repository/],
  ['repository without full_name', { ...pushPayload('octo/site'), repository: { name: 'site' } }, /full_name/],
  [
    'full_name with traversal',
    { ...pushPayload('octo/site'), repository: { full_name: '../../etc' } },
    /safe owner\/name/,
  ],
  // Three parts are a GitLab subgroup now (they were refused once); deeper than GitLab allows is refused.
  [
    'full_name deeper than GitLab nests',
    { ...pushPayload('octo/site'), repository: { full_name: Array(23).fill('g').join('/') } },
    /safe owner\/name/,
  ],
  ['no ref', { ...pushPayload('octo/site'), ref: undefined }, /no ref/],
  ['bad SHA', { ...pushPayload('octo/site'), after: 'HEAD; rm -rf /' }, /SHA/],
  ['branch that is an option', { ...pushPayload('octo/site'), ref: 'refs/heads/--upload-pack=evil' }, /branch/],
  ['branch with ..', { ...pushPayload('octo/site'), ref: 'refs/heads/a/../b' }, /branch/],
  ['release without tag', { ...releasePayload('octo/site'), release: { tag_name: '' } }, /tag/],
];
for (const [name, payload, message] of malformed) {
  test(`normaliseEvent refuses ${name}`, () => {
    try {
      normaliseEvent('github', name.startsWith('release') ? 'release' : 'push', payload);
      assert.unreachable('should throw');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, message);
    }
  });
}

test("normaliseEvent: unsafe clone URLs are dropped, not passed on; a bare repo's file:/// path (hooks/post-receive-webhook) is kept", () => {
  for (const url of [
    'ext::sh -c touch% /tmp/pwned',
    '/srv/git/site.git',
    '../site.git',
    'file://host/srv/git/site.git',
    '-uhack',
    'file:///srv/my site.git',
  ]) {
    const payload = pushPayload('octo/site');
    payload.repository.clone_url = url;
    const event = normaliseEvent('github', 'push', payload);
    assert.is(event.kind === 'push' && event.cloneUrl, undefined, url);
  }
  const event = normaliseEvent(
    'github',
    'push',
    pushPayload('octo/site', { cloneUrl: 'file:///srv/git/my%20site.git' }),
  );
  assert.is(event.kind === 'push' && event.cloneUrl, 'file:///srv/git/my%20site.git');
});

test('normaliseEvent: a clone URL with credentials refuses the delivery without repeating them; ssh user names pass', () => {
  for (const url of [
    'https://x-access-token:ghs_s3cret@github.com/octo/site.git',
    'http://ghp_s3cret@github.com/octo/site.git',
    'ssh://git:s3cret@host/x.git',
  ]) {
    const payload = pushPayload('octo/site', { cloneUrl: url });
    try {
      normaliseEvent('github', 'push', payload);
      assert.unreachable(url);
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as Error).message, /carries credentials/);
      assert.not.ok((error as Error).message.includes('s3cret'));
    }
  }
  for (const url of [
    'ssh://git@github.com/octo/site.git',
    'git@github.com:octo/site.git',
    'https://github.com/octo/site.git',
  ]) {
    const event = normaliseEvent('github', 'push', pushPayload('octo/site', { cloneUrl: url }));
    assert.is(event.kind === 'push' && event.cloneUrl, url);
  }
});

test('normaliseEvent: GitLab push and release hooks', () => {
  const project = { path_with_namespace: 'group/app', git_http_url: 'https://gitlab.example.com/group/app.git' };
  assert.equal(
    normaliseEvent('gitlab', 'Push Hook', {
      ref: 'refs/heads/main',
      after: 'c'.repeat(40),
      checkout_sha: 'c'.repeat(40),
      project,
    }),
    {
      kind: 'push',
      repo: 'group/app',
      ref: 'refs/heads/main',
      branch: 'main',
      sha: 'c'.repeat(40),
      cloneUrl: project.git_http_url,
      order: {},
      meta: {},
    },
  );
  const release = normaliseEvent('gitlab', 'Release Hook', { action: 'create', tag: 'v1', project });
  assert.is(release.kind, 'release');
  assert.is(normaliseEvent('gitlab', 'Tag Push Hook', { project }).kind, 'ignored');
});

test('deliveryId: forge header, else a digest of the body', () => {
  assert.is(deliveryId('github', { 'x-github-delivery': 'abc-123' }, buf), 'abc-123');
  assert.is(deliveryId('gitea', { 'x-gitea-delivery': 'g-1' }, buf), 'g-1');
  assert.is(deliveryId('gitlab', { 'x-gitlab-event-uuid': 'u-1' }, buf), 'u-1');
  const a = deliveryId('github', { 'x-github-delivery': 'bad id with spaces' }, buf);
  assert.match(a, /^sha256:[0-9a-f]{32}$/);
  assert.is(a, deliveryId('github', {}, buf));
});

test('validateRefName accepts ordinary names', () => {
  for (const name of ['main', 'release/1.x', 'v1.2.3', 'feature_x-y']) assert.is(validateRefName(name, 'branch'), name);
  for (const name of ['-x', 'a..b', 'a b', 'a.lock', '.hidden', 'a/', 'a@{1}', 'x\u0000'])
    assert.throws(() => validateRefName(name, 'branch'), name);
});

test.run();
