// Drives the browser page where websockets cannot open (a proxy that breaks them, here a page
// whose `WebSocket` fails at once): the page reads the live feed as server-sent events instead and
// draws its arcs. Prints what it saw as JSON; exits non-zero with the reason when it does not.
//
//   node tests/browser/events.mjs --url http://127.0.0.1:8080 --campaign C --out DIR
import { parseArgs } from "node:util";
import { finish, launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, campaign: { type: "string" }, out: { type: "string" } },
});
const browser = await launch();
const report = {};
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Every websocket the page opens closes before it opens, as behind such a proxy.
  await page.addInitScript(() => {
    window.WebSocket = class BrokenWebSocket extends EventTarget {
      static OPEN = 1;
      constructor() { super(); this.readyState = 3; setTimeout(() => this.onclose?.({ code: 1006 }), 50); }
      send() {}
      close() {}
    };
  });
  const streams = [];
  page.on("request", (request) => {
    if (request.url().includes("/v1/live/events")) streams.push(request.url());
  });
  await page.goto(`${args.url}/?campaign=${args.campaign}`);
  await page.waitForFunction(() => window.viralGlobe?.connection === "open" && window.viralGlobe.arcsReceived > 20,
    null, { timeout: 20_000 }).catch(() => { throw new Error("no arcs over server-sent events"); });
  report.arcs = await page.evaluate(() => window.viralGlobe.arcsReceived);
  report.streams = streams.length;
  if (streams.length === 0) problems.push("the page never asked for /v1/live/events");
  await page.screenshot({ path: `${args.out}/events.png` });
} catch (e) {
  problems.push(e.message);
}
await finish(browser, report, problems);
