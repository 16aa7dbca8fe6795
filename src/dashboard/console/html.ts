/**
 * HTML by tagged template: every interpolated value is escaped unless it is
 * already `Html` (made by `html` itself, or `unsafeHtml` for text this code
 * wrote). Arrays are joined, null/undefined/false render nothing. Error
 * messages and payload fields are shown to operators, so escaping must be the
 * default rather than something each page remembers to do.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => entities[char] as string);
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let text = strings[0] ?? "";
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] ?? "");
  });
  return new Html(text);
}

/** Markup this code wrote itself (a stylesheet); never pass it outside input. */
export function unsafeHtml(text: string): Html {
  return new Html(text);
}
