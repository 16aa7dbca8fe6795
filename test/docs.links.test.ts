import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packageRoot } from "../src/lib/paths.js";
import { anchorsOf, checkLinks, extractLinks, githubSlug } from "./support/markdown-links.js";

/**
 * Every relative link in README.md and docs/*.md names a file that exists,
 * and every #fragment a heading (GitHub's slug rules) of the file it points
 * into. Needs no services.
 */
const documents = [
  join(packageRoot, "README.md"),
  ...readdirSync(join(packageRoot, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => join(packageRoot, "docs", name)),
];

describe("documentation links", () => {
  it("covers the README and the reference text in docs/", () => {
    const names = documents.map((path) => path.slice(packageRoot.length + 1));
    expect(names).toContain("README.md");
    expect(names).toEqual(expect.arrayContaining(["docs/operating.md", "docs/configuration.md", "docs/jobs.md", "docs/benchmarks.md", "docs/design.md"]));
  });

  it.each(documents.map((path) => [path.slice(packageRoot.length + 1), path]))("%s: every relative link and #anchor resolves", (_name, path) => {
    const markdown = readFileSync(path, "utf8");
    expect(extractLinks(markdown).length).toBeGreaterThan(0);
    expect(checkLinks(packageRoot, path, markdown)).toEqual([]);
  });
});

describe("the link checker", () => {
  const scratch = mkdtempSync(join(tmpdir(), "dbjobs-docs-links-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("slugs headings as GitHub does", () => {
    expect(githubSlug("What every job shares")).toBe("what-every-job-shares");
    expect(githubSlug("C++ & Rust — 2× faster")).toBe("c--rust--2-faster");
    expect(githubSlug("Émile's café_au_lait")).toBe("émiles-café_au_lait");
    const anchors = anchorsOf(
      [
        "# Title",
        "## What `messaging_messages` indexes",
        "## `@prisma/streams-local` replaced by a **stub**",
        "## [Linked](x.md) heading ##",
        "## Result",
        "## Result",
        "## Result-1",
        "Setext heading",
        "--------------",
        '<a id="custom-anchor"></a>',
        "```md",
        "## Not a heading inside a fence",
        "```",
      ].join("\n"),
    );
    expect([...anchors]).toEqual([
      "title",
      "what-messaging_messages-indexes",
      "prismastreams-local-replaced-by-a-stub",
      "linked-heading",
      "result",
      "result-1",
      "result-1-1",
      "setext-heading",
      "custom-anchor",
    ]);
  });

  it("reports a missing file, a missing heading, a link out of the repository and a fragment on a source file", () => {
    mkdirSync(join(scratch, "docs"), { recursive: true });
    mkdirSync(join(scratch, "src"), { recursive: true });
    writeFileSync(join(scratch, "docs", "other.md"), "# Other\n\n## Kept section\n");
    writeFileSync(join(scratch, "src", "code.ts"), "export {};\n");
    const file = join(scratch, "README.md");
    const markdown = [
      "# Readme",
      "[fine](docs/other.md#kept-section) [fine too](#readme) [line](src/code.ts#L1) [web](https://example.com/x#y)",
      "[gone](docs/missing.md) [no heading](docs/other.md#lost-section) [self](#nowhere)",
      "[outside](../elsewhere.md) [fragment on code](src/code.ts#main)",
      "`[not a link](nowhere.md)`",
      "```",
      "[not a link either](nowhere.md)",
      "```",
      "[ref]: docs/also-missing.md",
    ].join("\n");
    writeFileSync(file, markdown);
    const problems = checkLinks(scratch, file, markdown).map(({ line, target }) => `${line} ${target}`);
    expect(problems).toEqual([
      "3 docs/missing.md",
      "3 docs/other.md#lost-section",
      "3 #nowhere",
      "4 ../elsewhere.md",
      "4 src/code.ts#main",
      "9 docs/also-missing.md",
    ]);
  });
});
