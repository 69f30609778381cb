// The real reverse proxy's side of a preview (docs/previews.md): DIR/pr-N.conf written through a
// temp file and a rename, nginx's test run, and only when it passes its reload; when either fails,
// the previous file (or none) is put back. Commands come as argv and never go through a shell
// string; names, hosts, paths and ports are checked before anything is written.
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { acquireLock } from '../core/lock.ts';
import { atomicWriteFile } from '../core/fs.ts';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { $ } from '../core/shell.ts';
import {
  normalisePreviewPath,
  parseListen,
  previewDomainProblem,
  previewPathProblem,
} from '../config/preview-values.ts';
import { prOfName, previewNameProblem, validatePreviewName } from './name.ts';
import { nginxWorkers, untilOldWorkersStop } from './nginx-workers.ts';

export interface ProxyCommands {
  /** nginx's config test, as argv (`['nginx', '-t']`). */
  test: readonly string[];
  /** nginx's reload, as argv (`['nginx', '-s', 'reload']`). */
  reload: readonly string[];
  /** How long each may take (default 30 s). */
  timeoutMs?: number;
}

export interface RouteSpec {
  /** `pr-N`; the host label and file name are made from it alone. */
  name: string;
  /** The preview's app on 127.0.0.1. */
  upstreamPort: number;
  /** Domain mode: the route answers pr-N.DOMAIN. Exactly one of domain and path. */
  domain?: string;
  /** Path mode: the route is the location /PATH/pr-N/ inside the user's server block. */
  path?: string;
  /** Domain mode: the server block's listen (default 80). */
  listen?: string;
  /** An htpasswd file asked for in front of the preview (`auth.users_file`). */
  usersFile?: string;
}

export interface RouteChange extends ProxyCommands {
  /** The folder of pr-N.conf files that the user's nginx.conf includes. */
  dir: string;
}

const ROUTE_FILE = /^(pr-[1-9][0-9]{0,8})\.conf$/;
const LOCK = '.shipkit-previews.lock';

/** The route's file: a server block (domain) or a location (path), with a header saying how it is included. */
export function routeConf(spec: RouteSpec, dir = 'DIR'): string {
  const name = validatePreviewName(spec.name);
  const port = spec.upstreamPort;
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new ValidationError(`Invalid upstream port ${String(port).slice(0, 20)} for ${name}: give 1 to 65535.`);
  if ((spec.domain === undefined) === (spec.path === undefined))
    throw new ValidationError(`A route for ${name} needs a domain or a path, not both and not neither.`);
  // DIR is only named in a comment, but a line break in it would end the comment.
  if (/[\0-\x1f\x7f]/.test(dir)) throw new ValidationError(`Invalid folder ${JSON.stringify(dir.slice(0, 80))}.`);
  if (spec.usersFile !== undefined && !/^\/[A-Za-z0-9._/@+-]+$/.test(spec.usersFile))
    throw new ValidationError(`Invalid users file ${JSON.stringify(spec.usersFile.slice(0, 80))} for ${name}.`);
  const proxied = [
    '    proxy_http_version 1.1;',
    '    proxy_set_header Host $host;',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    proxy_set_header X-Forwarded-Host $host;',
    '    proxy_set_header Connection "";',
    ...(spec.usersFile ? [`    auth_basic "preview ${name}";`, `    auth_basic_user_file ${spec.usersFile};`] : []),
  ];
  const head = `# ${name}: written by shipkit for a pull request's preview; shipkit replaces and removes it, do not edit.`;
  const include = `include ${path.join(dir, '*.conf')};`;
  if (spec.domain !== undefined)
    return domainConf([head, `# Domain mode: the http block of nginx.conf has ${include}`], name, spec, port, proxied);
  return pathConf(
    [head, `# Path mode: a location, so your own server block has ${include}`],
    name,
    spec.path!,
    port,
    proxied,
  );
}

function domainConf(head: string[], name: string, spec: RouteSpec, port: number, proxied: string[]) {
  const domain = spec.domain!;
  const listenText = spec.listen ?? '80';
  const problem = previewDomainProblem(domain);
  if (problem)
    throw new ValidationError(`Invalid preview domain ${JSON.stringify(domain.slice(0, 80))}: it ${problem}.`);
  const listen = parseListen(listenText);
  if (listen === undefined)
    throw new ValidationError(`Invalid listen ${JSON.stringify(listenText)}: give 80 or ADDRESS:PORT.`);
  return [
    ...head,
    'server {',
    `  listen ${listen};`,
    `  server_name ${name}.${domain};`,
    '  location / {',
    `    proxy_pass http://127.0.0.1:${port};`,
    ...proxied,
    '  }',
    '}',
    '',
  ].join('\n');
}

function pathConf(head: string[], name: string, prefix: string, port: number, proxied: string[]) {
  const problem = previewPathProblem(prefix);
  if (problem) throw new ValidationError(`Invalid preview path ${JSON.stringify(prefix.slice(0, 80))}: it ${problem}.`);
  const at = `${normalisePreviewPath(prefix)}${name}`;
  return [
    ...head,
    `location = ${at} {`,
    `  return 301 ${at}/;`,
    '}',
    `location ${at}/ {`,
    `  proxy_pass http://127.0.0.1:${port}/;`,
    `  proxy_set_header X-Forwarded-Prefix ${at};`,
    ...proxied.map((line) => line.slice(2)),
    '}',
    '',
  ].join('\n');
}

/** Writes DIR/pr-N.conf, tests and reloads nginx; on a failure the previous file is back and the error says nginx's words. */
export async function writeRoute(change: RouteChange & RouteSpec): Promise<void> {
  const text = routeConf(change, change.dir);
  await changeRoute(change, change.name, text);
}

/** Removes DIR/pr-N.conf, tests and reloads nginx; false (nothing run) when there was none. */
export async function removeRoute(change: RouteChange & { name: string }): Promise<boolean> {
  return changeRoute(change, validatePreviewName(change.name), undefined);
}

/** The preview names with a file in DIR (pr-N.conf), by number; what else is there is left alone. */
export async function listRoutes(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return entries
    .map((entry) => ROUTE_FILE.exec(entry)?.[1])
    .filter((name): name is string => name !== undefined && previewNameProblem(name) === undefined)
    .sort((a, b) => prOfName(a) - prOfName(b));
}

// The changes this process makes, one after another per DIR, so they do not poll the lock file.
const queues = new Map<string, Promise<unknown>>();

/** One change at a time per DIR (across processes too): the test must judge the files as they will be loaded. */
function changeRoute(change: RouteChange, name: string, next: string | undefined): Promise<boolean> {
  checkCommands(change);
  const key = path.resolve(change.dir);
  const run = (queues.get(key) ?? Promise.resolve()).then(() => changeLocked(change, name, next));
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => queues.get(key) === tail && queues.delete(key));
  return run;
}

async function changeLocked(change: RouteChange, name: string, next: string | undefined): Promise<boolean> {
  const file = path.join(change.dir, `${name}.conf`);
  const lock = await inFolder(change.dir, async () => {
    await mkdir(change.dir, { recursive: true, mode: 0o755 });
    return acquireLock(path.join(change.dir, LOCK), {
      waitMs: 60_000,
      staleMs: 10 * 60_000,
      what: `the previews' nginx folder ${change.dir}`,
    });
  });
  try {
    const previous = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (next === undefined && previous === undefined) return false;
    await inFolder(change.dir, () => putFile(file, next));
    const failed = (await runProxyCommand(change.test, change)) ?? (await reload(change));
    if (failed !== undefined) {
      await putFile(file, previous);
      const what =
        next === undefined ? `removing ${name}` : `${previous === undefined ? 'adding' : 'changing'} ${name}`;
      throw new WorkError(
        `nginx refused ${what}, so ${previous === undefined ? 'no' : 'the previous'} ${name}.conf is in place and nginx runs what it ran: ${failed}`,
      );
    }
    return true;
  } finally {
    await lock.release();
  }
}

/** nginx's reload, done once no worker that ran before it still takes connections (nginx-workers.ts). */
async function reload(change: RouteChange): Promise<string | undefined> {
  const before = nginxWorkers();
  const failed = await runProxyCommand(change.reload, change);
  if (failed === undefined) await untilOldWorkersStop(before);
  return failed;
}

/** `step` on DIR; a file-system error becomes one that says what the operator can do. */
async function inFolder<T>(dir: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code || !/^E[A-Z]+$/.test(code)) throw error;
    throw new WorkError(
      `Cannot write the previews' nginx folder ${dir} (${code}): make it a folder hook-server's user may write (nginx.dir).`,
      { cause: error },
    );
  }
}

async function putFile(file: string, text: string | undefined): Promise<void> {
  if (text === undefined) await rm(file, { force: true });
  else await atomicWriteFile(file, text, { mode: 0o644 });
}

function checkCommands({ test, reload }: ProxyCommands): void {
  for (const [what, argv] of [
    ['test', test],
    ['reload', reload],
  ] as const)
    if (!argv.length || !argv[0] || argv.some((arg) => typeof arg !== 'string' || arg.includes('\0')))
      throw new ValidationError(`nginx's ${what} command is empty or holds a NUL; give its argv, such as nginx -t.`);
}

/** Runs argv; undefined when it exits 0, else what it said (nginx's [emerg] lines first). */
async function runProxyCommand(
  argv: readonly string[],
  { timeoutMs = 30_000 }: ProxyCommands,
): Promise<string | undefined> {
  try {
    const done = await $({ quiet: true, nothrow: true, timeout: timeoutMs })`${argv}`;
    if (done.exitCode === 0) return undefined;
    const said = `${done.stderr}\n${done.stdout}`
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const problems = said.filter((l) => /\[(emerg|alert|crit|error)\]/.test(l));
    const words = (problems.length ? problems : said).join(' ').slice(0, 2000);
    const end = done.signal ? `was stopped by ${done.signal}` : `exited with ${done.exitCode}`;
    return `${argv.join(' ')} ${end}${words ? `: ${words}` : ''}`;
  } catch (error) {
    return `${argv.join(' ')} could not run: ${messageOf(error)}`;
  }
}
