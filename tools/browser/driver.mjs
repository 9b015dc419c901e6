// A headless Chromium driven by JSON lines, for the status page's tests
// (server/tests/status_page.rs): one command per line on stdin, one answer
// per line on stdout, in order.
//
//   {"op":"goto","url":"http://…"}                      -> {"ok":true}
//   {"op":"fill","selector":"#token","text":"…"}        -> {"ok":true}
//   {"op":"click","selector":"button"}                  -> {"ok":true}
//   {"op":"wait","selector":"…","text":"…","timeout":2000}
//        waits until an element matching the selector (and containing the
//        text, if given) is visible                     -> {"ok":true,"ms":…}
//   {"op":"text","selector":"…"}      textContent of each match -> {"ok":true,"value":[…]}
//   {"op":"count","selector":"…"}                       -> {"ok":true,"value":n}
//   {"op":"url"}                                        -> {"ok":true,"value":"…"}
//   {"op":"screenshot","path":"…"}                      -> {"ok":true}
//   {"op":"log"}   console messages and page errors so far -> {"ok":true,"value":[…]}
//
// A failure answers {"ok":false,"error":"…"}; the driver goes on. Chromium
// is Debian's (/usr/bin/chromium, or $CHROMIUM); playwright-core brings no
// browser of its own.
import { createInterface } from "node:readline";
import { launch } from "./launch.mjs";

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
const log = [];
page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
page.on("dialog", async (d) => {
  log.push(`dialog: ${d.message()}`);
  await d.dismiss();
});

const say = (answer) => process.stdout.write(JSON.stringify(answer) + "\n");

async function run(c) {
  switch (c.op) {
    case "goto":
      await page.goto(c.url, { waitUntil: "load" });
      return {};
    case "fill":
      await page.fill(c.selector, c.text);
      return {};
    case "click":
      await page.click(c.selector);
      return {};
    case "wait": {
      const started = Date.now();
      let target = page.locator(c.selector);
      if (c.text !== undefined) target = target.filter({ hasText: c.text });
      await target.first().waitFor({ state: "visible", timeout: c.timeout ?? 5000 });
      return { ms: Date.now() - started };
    }
    case "text":
      return { value: await page.locator(c.selector).allTextContents() };
    case "count":
      return { value: await page.locator(c.selector).count() };
    case "url":
      return { value: page.url() };
    case "screenshot":
      await page.screenshot({ path: c.path, fullPage: true });
      return {};
    case "log":
      return { value: log };
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    say({ ok: true, ...(await run(JSON.parse(line))) });
  } catch (e) {
    say({ ok: false, error: String(e?.message ?? e) });
  }
}
await browser.close();
