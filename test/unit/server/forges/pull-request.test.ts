// @deno
// Pull request events of every forge, read by normaliseEvent from real payloads (GitHub's octokit
// examples, Gitea's fork PR, Gogs's abridged one, GitLab's Merge Request Hook): what each field
// comes from, and hostile or missing fields kept as data or refused naming the field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PullRequestEvent, WebhookEvent } from '../../../../lib/server/forges/payload.ts';
import { oneLine, requiredRef, valueAt } from '../../../../lib/server/forges/pull-request.ts';
import { normaliseEvent, type Forge } from '../../../../lib/server/webhooks.ts';
import { forgePayload, fromFork, githubPullRequest } from '../../../fixtures/hooks/pull-requests.ts';

const SHA = 'ec26c3e57ca3a959ca5aad62de7213c562f8c821';
type Payload = Record<string, any>;

function pull(forge: Forge, payload: Payload): PullRequestEvent {
  const event: WebhookEvent = normaliseEvent(
    forge,
    forge === 'gitlab' ? 'Merge Request Hook' : 'pull_request',
    payload,
  );
  if (event.kind !== 'pull_request') throw new Error(`not a pull request: ${JSON.stringify(event)}`);
  return event;
}

/** A copy of `payload` with `path` set to `value` (deleted for undefined). */
function withField(payload: Payload, path: string, value: unknown): Payload {
  const copy = structuredClone(payload);
  const keys = path.split('.');
  const parent = keys.slice(0, -1).reduce((obj, key) => obj[key], copy);
  if (value === undefined) delete parent[keys[keys.length - 1]];
  else parent[keys[keys.length - 1]] = value;
  return copy;
}

const gitlabUpdate = (change: Payload) =>
  withField(forgePayload('gitlab-merge-request-event.json'), 'object_attributes', {
    ...forgePayload('gitlab-merge-request-event.json').object_attributes,
    action: 'update',
    ...change,
  });

test('GitHub: an opened PR, every field from its payload', () => {
  assert.equal(pull('github', githubPullRequest('opened')), {
    kind: 'pull_request',
    repo: 'Codertocat/Hello-World',
    pr: 2,
    action: 'opened',
    head: {
      sha: SHA,
      ref: 'changes',
      repo: 'Codertocat/Hello-World',
      cloneUrl: 'https://github.com/Codertocat/Hello-World.git',
    },
    base: { ref: 'master', repo: 'Codertocat/Hello-World' },
    fromFork: false,
    author: 'Codertocat',
    association: 'OWNER',
    title: 'Update the README with new information.',
    labels: [],
    sender: 'Codertocat',
    url: 'https://github.com/Codertocat/Hello-World/pull/2',
  });
});

test('GitHub: synchronize, reopened, closed and merged; labeled names the label and who set it', () => {
  for (const action of ['synchronize', 'reopened', 'closed', 'merged'])
    assert.is(pull('github', githubPullRequest(action)).action, action);
  const labeled = pull('github', githubPullRequest('labeled'));
  assert.equal(
    [labeled.action, labeled.label, labeled.sender, labeled.labels],
    ['labeled', 'bug', 'Codertocat', ['bug']],
  );
  assert.not.ok('label' in pull('github', githubPullRequest('opened')));
});

test('GitHub: a head in another repository, or one of the same name but another id, is from a fork', () => {
  const forked = pull('github', fromFork(githubPullRequest('opened'), 'mallory/Hello-World'));
  assert.equal(
    [forked.fromFork, forked.head.repo, forked.head.cloneUrl],
    [true, 'mallory/Hello-World', 'https://github.com/mallory/Hello-World.git'],
  );
  const sameName = withField(githubPullRequest('opened'), 'pull_request.head.repo.id', 1);
  assert.is(pull('github', sameName).fromFork, true);
});

test('GitHub: other actions are ignored with their name; an unknown association is left out', () => {
  for (const action of ['assigned', 'unlabeled', 'edited', 'ready_for_review']) {
    const payload = withField(githubPullRequest('opened'), 'action', action);
    assert.equal(normaliseEvent('github', 'pull_request', payload), {
      kind: 'ignored',
      reason: `pull request ${action} (previews do not act on it)`,
      repo: 'Codertocat/Hello-World',
    });
  }
  const odd = withField(githubPullRequest('opened'), 'pull_request.author_association', 'ADMIN');
  assert.not.ok('association' in pull('github', odd));
});

test('Gitea/Forgejo: a PR from a fork, synchronized, label_updated and a merged close', () => {
  const gitea = forgePayload('gitea-pull-request-event.json');
  assert.equal(pull('gitea', gitea), {
    kind: 'pull_request',
    repo: 'example/example',
    pr: 2,
    action: 'opened',
    head: {
      sha: '48e773f892a831faa47c0a160d1b7f0cd369ae2a',
      ref: 'master',
      repo: 'example2/example',
      cloneUrl: 'http://localhost:3000/example2/example.git',
    },
    base: { ref: 'master', repo: 'example/example' },
    fromFork: true,
    author: 'example2',
    title: 'update',
    labels: [],
    sender: 'example2',
    url: 'http://localhost:3000/example/example/pulls/2',
  });
  assert.is(pull('gitea', { ...gitea, action: 'synchronized' }).action, 'synchronize');
  const labels = withField(gitea, 'pull_request.labels', [{ name: 'preview' }]);
  const labeled = pull('gitea', { ...labels, action: 'label_updated' });
  assert.equal([labeled.action, labeled.label, labeled.labels], ['labeled', undefined, ['preview']]);
  const merged = withField({ ...gitea, action: 'closed' }, 'pull_request.merged', true);
  assert.is(pull('gitea', merged).action, 'merged');
  assert.is(pull('gitea', { ...gitea, action: 'closed' }).action, 'closed');
});

test('Gogs: no head and no base is refused naming both, never a crash', () => {
  assert.throws(
    () => normaliseEvent('gitea', 'pull_request', forgePayload('gogs-pull-request-event.json')),
    (error: Error) =>
      error.name === 'ValidationError' && /no pull_request\.head and no pull_request\.base object/.test(error.message),
  );
});

test('GitLab: an opened merge request; the author is named only when the one who acted is the author', () => {
  const gitlab = forgePayload('gitlab-merge-request-event.json');
  assert.equal(pull('gitlab', gitlab), {
    kind: 'pull_request',
    repo: 'gitlabhq/gitlab-test',
    pr: 1,
    action: 'opened',
    head: {
      sha: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      ref: 'ms-viewport',
      repo: 'awesome_space/awesome_project',
      cloneUrl: 'http://example.com/awesome_space/awesome_project.git',
    },
    base: { ref: 'master', repo: 'awesome_space/awesome_project' },
    fromFork: false,
    title: 'MS-Viewport',
    labels: ['API'],
    sender: 'root',
    url: 'http://example.com/diaspora/merge_requests/1',
  });
  assert.is(pull('gitlab', withField(gitlab, 'user.id', 51)).author, 'root');
  assert.is(pull('gitlab', withField(gitlab, 'object_attributes.source_project_id', 15)).fromFork, true);
});

test('GitLab: reopen, close and merge; update is synchronize with oldrev, labeled when a label was added', () => {
  const gitlab = forgePayload('gitlab-merge-request-event.json');
  for (const [given, action] of [
    ['reopen', 'reopened'],
    ['close', 'closed'],
    ['merge', 'merged'],
  ])
    assert.is(pull('gitlab', withField(gitlab, 'object_attributes.action', given)).action, action);
  assert.is(pull('gitlab', gitlabUpdate({ oldrev: 'a'.repeat(40) })).action, 'synchronize');
  // The payload's own changes: API replaced by Platform.
  const labeled = pull('gitlab', gitlabUpdate({}));
  assert.equal([labeled.action, labeled.label, labeled.labels], ['labeled', 'Platform', ['API', 'Platform']]);
  const edited = withField(gitlabUpdate({}), 'changes.labels', undefined);
  assert.equal(normaliseEvent('gitlab', 'Merge Request Hook', edited), {
    kind: 'ignored',
    reason: 'merge request update without new commits or labels (previews do not act on it)',
    repo: 'gitlabhq/gitlab-test',
  });
  const approved = normaliseEvent('gitlab', 'Merge Request Hook', gitlabUpdate({ action: 'approved' }));
  assert.is(approved.kind, 'ignored');
});

const HOSTILE = [
  '../../../etc/passwd',
  'x;rm -rf /;$(reboot)`id`',
  'é🚀ß漢字-ветка',
  'b'.repeat(300),
  '--upload-pack=touch /tmp/pwned',
];

const SIDES: Array<[Forge, () => Payload, string, string]> = [
  ['github', () => githubPullRequest('opened'), 'pull_request.head.ref', 'pull_request.title'],
  ['gitea', () => forgePayload('gitea-pull-request-event.json'), 'pull_request.head.ref', 'pull_request.title'],
  [
    'gitlab',
    () => forgePayload('gitlab-merge-request-event.json'),
    'object_attributes.source_branch',
    'object_attributes.title',
  ],
];

test('hostile branch names and titles are kept as data: controls removed, nothing refused', () => {
  for (const [forge, payload, refPath, titlePath] of SIDES) {
    for (const value of HOSTILE) {
      const event = pull(forge, withField(withField(payload(), refPath, value), titlePath, value));
      assert.is(event.head.ref, value, `${forge} ref ${value.slice(0, 20)}`);
      assert.is(event.title, value);
    }
    const controls = pull(
      forge,
      withField(withField(payload(), refPath, 'a\nb\x1b[31mc\r\u009b'), titlePath, 'one\ntwo\x1b[2J'),
    );
    assert.is(controls.head.ref, 'ab[31mc');
    assert.is(controls.title, 'one\ntwo[2J');
  }
});

test('a PR number that is not a positive integer is refused naming the field', () => {
  const numbers: Array<[Forge, () => Payload, string]> = [
    ['github', () => githubPullRequest('opened'), 'number'],
    ['gitea', () => forgePayload('gitea-pull-request-event.json'), 'number'],
    ['gitlab', () => forgePayload('gitlab-merge-request-event.json'), 'object_attributes.iid'],
  ];
  for (const [forge, payload, path] of numbers)
    for (const bad of [0, -2, 1.5, '2', 2 ** 53, null, true, [2]])
      assert.throws(
        () => pull(forge, withField(payload(), path, bad)),
        new RegExp(path.replace('.', '\\.')),
        `${forge} ${bad}`,
      );
  assert.throws(() => pull('github', withField(githubPullRequest('opened'), 'pull_request.number', 3)), /differs/);
});

test('a head SHA that is not a full lower-case hex SHA is refused naming the field', () => {
  for (const bad of ['ec26c3e', 'E'.repeat(40), 'g'.repeat(40), `${SHA}\n`, `${SHA}0`, 42, ''])
    assert.throws(
      () => pull('github', withField(githubPullRequest('synchronize'), 'pull_request.head.sha', bad)),
      /pull_request\.head\.sha/,
    );
  assert.throws(
    () =>
      pull(
        'gitlab',
        withField(forgePayload('gitlab-merge-request-event.json'), 'object_attributes.last_commit.id', 'HEAD'),
      ),
    /object_attributes\.last_commit\.id/,
  );
});

test('a missing field is refused with a message naming it', () => {
  const required: Array<[Forge, () => Payload, string[]]> = [
    [
      'github',
      () => githubPullRequest('opened'),
      [
        'number',
        'pull_request.head.sha',
        'pull_request.head.ref',
        'pull_request.head.repo.full_name',
        'pull_request.head.repo.clone_url',
        'pull_request.base.ref',
        'pull_request.base.repo.full_name',
        'pull_request.title',
        'pull_request.html_url',
      ],
    ],
    [
      'gitlab',
      () => forgePayload('gitlab-merge-request-event.json'),
      [
        'object_attributes.iid',
        'object_attributes.last_commit.id',
        'object_attributes.source_branch',
        'object_attributes.source.path_with_namespace',
        'object_attributes.source.git_http_url',
        'object_attributes.target_branch',
        'object_attributes.target.path_with_namespace',
        'object_attributes.source_project_id',
        'object_attributes.title',
        'object_attributes.url',
      ],
    ],
  ];
  for (const [forge, payload, paths] of required)
    for (const path of paths)
      assert.throws(
        () => pull(forge, withField(payload(), path, undefined)),
        (error: Error) => error.message.includes(path),
        `${forge} ${path}`,
      );
  assert.throws(
    () => pull('github', withField(githubPullRequest('opened'), 'pull_request.head.repo', null)),
    /pull_request\.head\.repo\.full_name/,
  );
});

test('unsafe repository names, clone URLs with credentials and non-http PR pages are refused', () => {
  const opened = () => githubPullRequest('opened');
  assert.throws(
    () => pull('github', withField(opened(), 'pull_request.head.repo.full_name', '../evil')),
    /head\.repo\.full_name is not a safe/,
  );
  assert.throws(
    () => pull('github', withField(opened(), 'pull_request.head.repo.clone_url', 'https://u:tok@github.com/x/y.git')),
    /credentials/,
  );
  assert.throws(
    () => pull('github', withField(opened(), 'pull_request.head.repo.clone_url', 'ext::sh -c id')),
    /usable pull_request\.head\.repo\.clone_url/,
  );
  assert.throws(
    () => pull('github', withField(opened(), 'pull_request.html_url', 'javascript:alert(1)')),
    /http\(s\) pull_request\.html_url/,
  );
});

test('field readers: only own properties are followed, controls are cut from one-line text', () => {
  assert.is(valueAt({ a: { b: 1 } }, 'a.b'), 1);
  assert.is(valueAt({}, 'constructor.name'), undefined);
  assert.is(valueAt(JSON.parse('{"__proto__": {"x": "own"}}'), '__proto__.x'), 'own');
  assert.throws(() => requiredRef({}, 'toString'), /payload has no toString/);
  assert.is(oneLine(' \x00a\tb\u0085 ', 10), 'ab');
  assert.is(oneLine('\n\x1b', 10), undefined);
  assert.is(oneLine('x'.repeat(20), 5), 'xxxxx');
});

test.run();
