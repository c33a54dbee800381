// Drives the browser page through a lost connection, as a person on a flaky network would see it:
// opens the live feed of a campaign, says `at N` once the page has arc N, `resumed` once it has
// reconnected by itself, and finally prints the page's view of the arc line as JSON (last seq,
// arcs counted, gaps and duplicates it saw) when it reaches --until, or exits non-zero.
//
//   node tests/browser/resume.mjs --url http://127.0.0.1:8080 --campaign C --at 10 --until 30
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" }, campaign: { type: "string" },
    at: { type: "string" }, until: { type: "string" },
  },
});
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  const waitFor = (predicate, arg, what, timeout = 30_000) =>
    page.waitForFunction(predicate, arg, { timeout }).catch(() => { throw new Error(`timed out waiting for ${what}`); });
  await page.goto(`${args.url}/?campaign=${args.campaign}&view=map`);
  await waitFor((n) => window.viralGlobe.position.seq >= n, Number(args.at), `arc ${args.at}`);
  console.log(`at ${args.at}`);
  await waitFor(() => window.viralGlobe.resumes > 0 && window.viralGlobe.connection === "open", null, "the page to reconnect");
  console.log("resumed");
  await waitFor((n) => window.viralGlobe.position.seq >= n, Number(args.until), `arc ${args.until}`);
  await page.waitForTimeout(500);
  const report = await page.evaluate(() => {
    const s = window.viralGlobe;
    return { seq: s.position.seq, epoch: s.position.epoch, arcs: s.arcsReceived, gaps: s.gaps,
      duplicates: s.duplicates, resumes: s.resumes, clicks: s.counters.clicks };
  });
  console.log(JSON.stringify(report));
} catch (e) {
  console.error(String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
