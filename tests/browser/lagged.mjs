// Drives the browser page of a server with small subscriber queues, as a slow machine would: the
// page stops reading for a while (its main thread busy), the server drops arcs for it rather than
// slow anyone else, and the page says so. Prints what it saw as JSON; exits non-zero when the page
// does not show the notice.
//
//   node tests/browser/lagged.mjs --url http://127.0.0.1:8080 --campaign C --out DIR
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
  // JSON arcs: compact ones are so small that 15 s of them fit in the socket buffers on the way,
  // and nothing would be dropped within the test's time.
  // Every arc (`max_rate=0`): the page's own rate would leave out most of the demo's peak, and
  // what is measured here is a page too busy to read what it asked for.
  await page.goto(`${args.url}/?campaign=${args.campaign}&view=map&encoding=json&max_rate=0`);
  await page.waitForFunction(() => window.viralGlobe?.arcsReceived > 100, null, { timeout: 30_000, polling: 100 });
  // (A queue this small may drop a few arcs while the page starts: counted from here.)
  report.laggedBefore = await page.evaluate(() => window.viralGlobe.lagged ?? 0);
  // Busy for 15 s: the browser stops taking the socket's data, the buffers on the way fill.
  await page.evaluate(() => { const t = Date.now(); while (Date.now() - t < 15_000); });
  await page.waitForFunction((before) => !document.querySelector("[data-testid=lagged]").hidden
    && window.viralGlobe.lagged > before + 1_000, report.laggedBefore, { timeout: 10_000, polling: 100 })
    .catch(() => problems.push("no lagged notice after 15 s without reading"));
  report.notice = await page.textContent("[data-testid=lagged]");
  report.lagged = await page.evaluate(() => window.viralGlobe.lagged);
  report.connection = await page.evaluate(() => window.viralGlobe.connection);
  if (!/^This connection fell behind: [\d,]+ arcs were not shown$/.test(report.notice)) problems.push(`the notice says ${report.notice}`);
  if (report.connection !== "open") problems.push(`the connection is ${report.connection}`);
  await page.screenshot({ path: `${args.out}/lagged.png` });
} catch (e) {
  problems.push(e.message);
}
await finish(browser, report, problems);
