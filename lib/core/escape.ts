// Escaping for text placed in HTML or SVG (element content and quoted attribute values): the one
// place every page, badge and message builder takes it from. Also the bidi controls every place
// that shows payload text (the page, Slack, e-mail) writes out visibly instead of obeying.
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** Embeddings, overrides and isolates (U+202A–202E, U+2066–2069): they reorder the text after them. */
export const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;

/** The name a bidi control is shown by: `U+202E`. */
export function bidiName(control: string): string {
  return `U+${control.codePointAt(0)!.toString(16).toUpperCase()}`;
}

/** `text` with each bidi control written as a visible `<U+202E>` (plain-text messages). */
export function showBidiControls(text: string): string {
  return text.replace(BIDI_CONTROLS, (c) => `<${bidiName(c)}>`);
}

/** Control characters (newlines, ESC, bidi controls) shown as \u escapes: for a terminal or a page. */
export function shownEscaped(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
