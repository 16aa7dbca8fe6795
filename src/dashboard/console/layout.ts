import { type Html, html, unsafeHtml } from "./html.js";
import type { PageView } from "./page.js";

/**
 * The frame of every console page: a nav to bull-board and each page, who is
 * signed in and as what. Styles are inline and there are no fonts, scripts
 * or images from anywhere: the console works offline and under a CSP of
 * `default-src 'none'`.
 */
const styles = unsafeHtml(`
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2430;background:#f4f6f9}
nav{display:flex;gap:1.2rem;align-items:center;padding:.7rem 1.5rem;background:#151a21;color:#c9d1dc}
nav a{color:#c9d1dc;text-decoration:none}nav a[aria-current=page]{color:#fff;font-weight:600;border-bottom:2px solid #7aa2f7}
nav .who{margin-left:auto;font-size:.85rem;color:#8b96a5}
main{padding:1rem 1.5rem 3rem;max-width:1400px}
h1{font-size:1.35rem;margin:.4rem 0 1rem}h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;background:#fff;margin:.3rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #dde2ea;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.warn td{background:#fff4e0}code{font:12px/1.4 ui-monospace,monospace}
.notice{padding:.6rem 1rem;background:#e6f4ea;border:1px solid #b7dfc2;margin-bottom:1rem}
.error{padding:.6rem 1rem;background:#fdecea;border:1px solid #f5c2c0;margin-bottom:1rem}
.muted{color:#6b7685}button{cursor:pointer;padding:.2rem .7rem}
`);

export interface NavEntry {
  path: string;
  title: string;
}

export function layout(options: { title: string; nav: NavEntry[]; currentPath: string; view: PageView; body: Html }): Html {
  const { view } = options;
  const links = options.nav.map(
    (entry) => html`<a href="${view.basePath}${entry.path}" ${entry.path === options.currentPath ? unsafeHtml('aria-current="page"') : ""}>${entry.title}</a>`,
  );
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${options.title} · dbjobs</title>
<style>${styles}</style>
</head>
<body>
<nav><strong>dbjobs</strong><a href="/">Queues</a>${links}<span class="who">${view.principal.name} (${view.principal.role})</span></nav>
<main>
<h1>${options.title}</h1>
${options.body}
</main>
</body>
</html>`;
}
