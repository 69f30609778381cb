// Markdown as GitHub reads it, for the tests that hold README.md and docs/ against the checkout:
// fenced code blocks with their info string and first line.

export interface Block {
  info: string;
  code: string;
  line: number;
}

/** Fenced code blocks (``` or ~~~, three or more) with their info string and first line number. */
export function fencedBlocks(text: string): { blocks: Block[]; prose: string[] } {
  const blocks: Block[] = [];
  const prose: string[] = [];
  let open: { fence: string; info: string; line: number; code: string[] } | undefined;
  text.split('\n').forEach((line, i) => {
    if (open) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1][0] === open.fence[0] && close[1].length >= open.fence.length) {
        blocks.push({ info: open.info, code: open.code.join('\n'), line: open.line });
        open = undefined;
      } else open.code.push(line);
      return;
    }
    const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (m && !(m[1][0] === '`' && m[2].includes('`'))) open = { fence: m[1], info: m[2].trim(), line: i + 1, code: [] };
    else prose.push(line);
  });
  return { blocks, prose };
}
