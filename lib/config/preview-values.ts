// The values of a repo's `previews:` block that have rules of their own (docs/previews.md): the
// domain and path a preview is reached under, nginx's listen, durations, memory and CPU limits,
// forge logins, and commands split into argv without a shell. Each `…Problem` says why a value
// is refused (a phrase after the key), or undefined when it is fine.

/** One DNS label: letters, digits, inner hyphens, at most 63. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// pr-N. is put in front of the domain; the whole name stays within DNS's 253.
const MAX_DOMAIN_LENGTH = 253 - 'pr-999999999.'.length;

/** Why `domain` cannot carry previews as pr-N.DOMAIN, or undefined (it is lower case then). */
export function previewDomainProblem(domain: string): string | undefined {
  if (domain.includes('*'))
    return 'must not hold a wildcard: give the name previews go under, such as preview.example.com (shipkit puts pr-N. in front)';
  if (/[A-Z]/.test(domain)) return 'must be written in lower case';
  if (domain.endsWith('.')) return 'must not end with a dot (write preview.example.com)';
  if (domain.length > MAX_DOMAIN_LENGTH) return `is longer than ${MAX_DOMAIN_LENGTH} characters`;
  const labels = domain.split('.');
  if (!labels.every((label) => LABEL.test(label)))
    return 'must be a DNS name of letters, digits, "-" and dots, such as preview.example.com';
  if (/^\d+$/.test(labels[labels.length - 1]))
    return 'must be a DNS name, not an IP address (previews are told apart by name)';
  return undefined;
}

/** One path segment of the previews prefix: URL-safe characters, nothing nginx would read. */
const SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/** Why `prefix` cannot be the path previews live under (/PATH/pr-N/), or undefined. */
export function previewPathProblem(prefix: string): string | undefined {
  if (!prefix.startsWith('/')) return 'must start with "/", such as /previews/';
  const segments = prefix.split('/').filter(Boolean);
  if (prefix.includes('//')) return 'must not hold "//"';
  if (!segments.every((s) => SEGMENT.test(s) && !s.includes('..')))
    return 'must be plain segments (letters, digits, ".", "_", "~", "-") between single slashes, such as /previews/';
  return undefined;
}

/** `/previews` and `/previews/` → `/previews/`: one spelling, so /PATH/pr-N/ is a plain join. */
export function normalisePreviewPath(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** nginx's `listen` for a preview's server block: `80` or `ADDRESS:PORT`; undefined when neither. */
export function parseListen(value: unknown): string | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const [, address, port] = m;
  if (Number(port) < 1 || Number(port) > 65_535) return undefined;
  if (address && !address.startsWith('[') && address.split('.').some((octet) => Number(octet) > 255)) return undefined;
  return address ? `${address}:${Number(port)}` : String(Number(port));
}

const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30m`, `72h`, `7d`, `90s` → milliseconds; undefined when it is not such a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,6})([smhd])$/.exec(value.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * DURATION_UNITS[m[2]];
  return ms > 0 ? ms : undefined;
}

const SIZE_UNITS: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** `512M`, `1G`, `65536K` → bytes; undefined when it is not a whole number with K, M or G. */
export function parseMemory(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,7})([KMG])$/i.exec(value.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2].toUpperCase()];
  return bytes > 0 ? bytes : undefined;
}

/** `50%` → 50 (of one CPU, 1 to 100); undefined otherwise. */
export function parseCpuPercent(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,3})%$/.exec(value.trim());
  if (!m) return undefined;
  const percent = Number(m[1]);
  return percent >= 1 && percent <= 100 ? percent : undefined;
}

/** A forge login (GitHub, Gitea/Forgejo, Gogs, GitLab): letters, digits, ".", "_", "-". */
export function loginProblem(login: unknown): string | undefined {
  if (typeof login !== 'string' || !login) return 'is empty';
  if (login.length > 100) return 'is longer than 100 characters';
  if (!/^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/.test(login))
    return 'is not a forge login (letters, digits, ".", "_", "-")';
  return undefined;
}

// A shell would read these; shipkit runs a command without one, so a command holding them would
// not do what it says. `\` is here too: no escapes, quotes are the one way to group words.
const SHELL_ONLY = new Set([...'|;&<>$`(){}[]*?~#\\']);

/**
 * `nginx -s reload` → ['nginx', '-s', 'reload']. Words are split at white space; '…' and "…"
 * group a word with spaces (taken as written, nothing expanded). Anything a shell alone would
 * understand (pipes, `;`, `$VAR`, globs, redirections) is refused: it is never run by a shell.
 */
export function splitCommand(text: string): { argv: string[] } | { problem: string } {
  if (/[\0-\x08\x0a-\x1f\x7f]/.test(text)) return { problem: 'holds a control character or a line break' };
  const argv: string[] = [];
  let word: string | undefined;
  let quote = '';
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = '';
      else if (quote === '"' && (c === '$' || c === '`' || c === '\\'))
        return { problem: `holds ${c} inside "…", which a shell would expand; use '…'` };
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === ' ' || c === '\t') {
      if (word !== undefined) argv.push(word);
      word = undefined;
    } else if (SHELL_ONLY.has(c)) {
      return {
        problem:
          `holds ${c}, which only a shell understands; it runs without one: give the program and ` +
          `its arguments, or the path of a script`,
      };
    } else word = (word ?? '') + c;
  }
  if (quote) return { problem: `has a ${quote} that is not closed` };
  if (word !== undefined) argv.push(word);
  if (!argv.length || !argv[0]) return { problem: 'is empty: give the program and its arguments' };
  return { argv };
}
