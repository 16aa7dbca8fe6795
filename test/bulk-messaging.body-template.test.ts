import { describe, expect, it } from "vitest";
import { compileBody } from "../src/jobs/bulk-messaging/body-template.js";

describe("bulk-messaging body template", () => {
  it("fills every {{firstName}} and {{lastName}}, with or without spaces inside the braces", () => {
    const render = compileBody("Hi {{firstName}} {{ lastName }}, {{firstName}}!");
    expect(render({ firstName: "Ada", lastName: "Lovelace" })).toBe("Hi Ada Lovelace, Ada!");
  });

  it("does not expand a placeholder or a replacement pattern that is part of a name", () => {
    const render = compileBody("Dear {{firstName}} {{lastName}}");
    expect(render({ firstName: "{{lastName}}", lastName: "$& $1" })).toBe("Dear {{lastName}} $& $1");
  });

  it("leaves other braces alone and handles templates without placeholders", () => {
    expect(compileBody("{{ other }} {lastName} {{lastName}}")({ firstName: "A", lastName: "B" })).toBe("{{ other }} {lastName} B");
    expect(compileBody("No names here.")({ firstName: "A", lastName: "B" })).toBe("No names here.");
    expect(compileBody("{{lastName}}")({ firstName: "A", lastName: "B" })).toBe("B");
  });
});
