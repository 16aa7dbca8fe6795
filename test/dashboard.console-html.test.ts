import { describe, expect, it } from "vitest";
import { dataView, rowsTable } from "../src/dashboard/console/data-view.js";
import { html } from "../src/dashboard/console/html.js";

/**
 * The console shows error messages and payload text that anyone who can
 * enqueue a job controls; the html template must escape them unless a value
 * is itself markup the console made. Needs no services.
 */
const hostile = `<img src=x onerror="alert('x')">&`;

describe("console HTML escaping", () => {
  it("escapes every interpolated string, number and array item, and keeps nested html as markup", () => {
    const rendered = html`<td title="${hostile}">${hostile}</td>${[hostile, 3]}${html`<b>${hostile}</b>`}${null}${false}${undefined}`.text;
    expect(rendered).not.toContain("<img");
    expect(rendered).toBe(
      '<td title="&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;">&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</td>' +
        "&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;3" +
        "<b>&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</b>",
    );
  });

  it("renders rows as tables with escaped headers and cells, sizes for byte fields, and nested data as tables", () => {
    const table = rowsTable([{ [hostile]: hostile, totalBytes: 20_480, payload: { patient: hostile } }]).text;
    expect(table).not.toContain("<img");
    expect(table).toContain("<th>&lt;img");
    expect(table).toContain("20 kB");
    expect(table).toContain("{&quot;patient&quot;:&quot;&lt;img");
    const view = dataView({ next: "2026-12", partitions: [{ partition: "transactions_default", rows: 12 }] }).text;
    expect(view).toContain("<h3>partitions</h3>");
    expect(view).toContain("<td>transactions_default</td>");
    expect(view).toContain('<td class="num">12</td>');
    expect(rowsTable([]).text).toContain("(none)");
  });
});
