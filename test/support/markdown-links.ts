import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, isAbsolute, join, relative, resolve } from "node:path";

/**
 * Relative links in markdown, checked the way GitHub renders them: a link to
 * a file in the repository must name one that exists, and a `#fragment` on a
 * markdown file (or on the same file) must name one of its headings, slugged
 * by GitHub's rules (github-slugger), or an explicit `<a id>`/`<a name>`.
 *
 * Not a markdown parser: it knows fenced code blocks, code spans, inline
 * links and images, reference definitions, ATX and setext headings, which is
 * all the project's docs use. Absolute URLs (`https:`, `mailto:`) are left
 * alone: checking them needs the network.
 */

export interface MarkdownLink {
  target: string;
  /** 1-based. */
  line: number;
}

export interface LinkProblem {
  /** Relative to the repository root. */
  file: string;
  line: number;
  target: string;
  reason: string;
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(markdown: string): { text: string; line: number }[] {
  const lines: { text: string; line: number }[] = [];
  let fence: string | undefined;
  for (const [index, text] of markdown.split(/\r?\n/).entries()) {
    const opener = /^ {0,3}(`{3,}|~{3,})/.exec(text);
    if (fence) {
      if (opener && opener[1]?.[0] === fence[0] && (opener[1]?.length ?? 0) >= fence.length && text.trim() === opener[1]) fence = undefined;
      continue;
    }
    if (opener) {
      fence = opener[1];
      continue;
    }
    lines.push({ text, line: index + 1 });
  }
  return lines;
}

const codeSpan = /(`+)([\s\S]*?[^`])\1(?!`)/g;

/** A code span's content stays (it is text), but nothing inside it is a link or markup. */
function withoutCodeSpans(text: string, replacement: (code: string) => string): string {
  return text.replace(codeSpan, (_match, _ticks: string, code: string) => replacement(code.trim()));
}

/** GitHub's heading id for rendered heading text (github-slugger, without the duplicate counter). */
export function githubSlug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The text GitHub renders for a heading's markdown: links become their text, code spans their content, markup and tags go. */
function renderedHeadingText(markdown: string): string {
  const linked = markdown.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1");
  let text = "";
  let last = 0;
  for (const match of linked.matchAll(codeSpan)) {
    text += renderedMarkup(linked.slice(last, match.index)) + (match[2] as string).trim();
    last = match.index + match[0].length;
  }
  return (text + renderedMarkup(linked.slice(last))).trim();
}

/** Text outside code spans: inline HTML tags, emphasis markers and backslash escapes do not render. */
function renderedMarkup(text: string): string {
  return text
    .replace(/<[^>]+>/g, "")
    .replace(/(\*{1,3}|\b_{1,3})(\S(?:[\s\S]*?\S)?)\1(?!\w)/g, "$2")
    .replace(/\\([!-/:-@[-`{-~])/g, "$1");
}

/** Every fragment a link may name in this document: heading slugs (repeats numbered as GitHub does) and explicit anchors. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  // github-slugger: a repeated slug gets -1, -2, … counted per original slug, skipping any already taken.
  const occurrences = new Map<string, number>();
  const addHeading = (text: string) => {
    const original = githubSlug(renderedHeadingText(text));
    let slug = original;
    while (occurrences.has(slug)) {
      const count = (occurrences.get(original) ?? 0) + 1;
      occurrences.set(original, count);
      slug = `${original}-${count}`;
    }
    occurrences.set(slug, 0);
    anchors.add(slug);
  };
  const lines = proseLines(markdown);
  for (const [position, { text, line }] of lines.entries()) {
    const atx = /^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/.exec(text);
    if (atx) addHeading(atx[1] ?? "");
    const previous = lines[position - 1];
    if (/^ {0,3}(=+|-+)[ \t]*$/.test(text) && previous && previous.line === line - 1 && isSetextText(previous.text)) addHeading(previous.text);
    for (const match of withoutCodeSpans(text, () => "code").matchAll(/<a\s[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']/gi)) anchors.add(match[1] as string);
  }
  return anchors;
}

/** A paragraph line that a `===`/`---` underline turns into a heading (not a list item, table row, quote or blank). */
function isSetextText(text: string): boolean {
  return text.trim() !== "" && !/^ {0,3}([-*+>|#]|\d+[.)])/.test(text) && !/^ {4}/.test(text);
}

export function extractLinks(markdown: string): MarkdownLink[] {
  const links: MarkdownLink[] = [];
  for (const { text, line } of proseLines(markdown)) {
    const prose = withoutCodeSpans(text, () => "code");
    const definition = /^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/.exec(prose);
    if (definition) links.push({ target: definition[1] as string, line });
    for (const match of prose.matchAll(/!?\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
      links.push({ target: match[1] as string, line });
    }
  }
  return links;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//");

/** GitHub's line anchors on a source file: #L10 or #L10-L20. */
const isLineAnchor = (fragment: string) => /^L\d+(-L\d+)?$/.test(fragment);

/**
 * The problems with the relative links of one markdown file. `file` is an
 * absolute path inside `root`; `markdown` its content.
 */
export function checkLinks(root: string, file: string, markdown: string): LinkProblem[] {
  const problems: LinkProblem[] = [];
  const anchorsByFile = new Map<string, Set<string>>([[file, anchorsOf(markdown)]]);
  const anchorsIn = (path: string) => {
    let anchors = anchorsByFile.get(path);
    if (!anchors) {
      anchors = anchorsOf(readFileSync(path, "utf8"));
      anchorsByFile.set(path, anchors);
    }
    return anchors;
  };

  for (const { target, line } of extractLinks(markdown)) {
    const report = (reason: string) => problems.push({ file: relative(root, file), line, target, reason });
    if (target === "") {
      report("empty link target");
      continue;
    }
    if (isExternal(target)) continue;
    const hash = target.indexOf("#");
    const pathPart = hash < 0 ? target : target.slice(0, hash);
    const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    let path: string;
    try {
      const decoded = decodeURIComponent(pathPart.split("?")[0] as string);
      path = decoded === "" ? file : decoded.startsWith("/") ? join(root, decoded) : resolve(dirname(file), decoded);
    } catch {
      report("cannot decode the path");
      continue;
    }
    const inRepo = relative(root, path);
    if (inRepo.startsWith("..") || isAbsolute(inRepo)) {
      report("points outside the repository");
      continue;
    }
    if (!existsSync(path)) {
      report(`no such file: ${inRepo}`);
      continue;
    }
    if (fragment === undefined) continue;
    if (fragment === "") {
      report("empty #fragment");
      continue;
    }
    if (statSync(path).isFile() && extname(path).toLowerCase() === ".md") {
      if (!anchorsIn(path).has(fragment)) report(`no heading or anchor "#${fragment}" in ${inRepo === "" ? "this file" : inRepo}`);
    } else if (!isLineAnchor(fragment)) {
      report(`"#${fragment}" on ${inRepo}, which is not a markdown file`);
    }
  }
  return problems;
}
