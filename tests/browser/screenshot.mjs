// Takes the README's picture of the browser page: the live globe of a running server, in headless
// Chromium (software WebGL) at 1280×720, once the demo's feed has filled it for a while.
//
//   node tests/browser/screenshot.mjs --url http://127.0.0.1:8080 --campaign bones-brigade --out docs/page.png
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    campaign: { type: "string" },
    out: { type: "string" },
    seconds: { type: "string", default: "25" },
  },
});
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${args.url}/?campaign=${args.campaign}`);
  await page.waitForFunction(() => window.viralGlobe?.connection === "open" && window.viralGlobe.arcsReceived > 200,
    null, { timeout: 30_000, polling: 100 });
  await page.waitForTimeout(Number(args.seconds) * 1_000);
  await page.screenshot({ path: args.out });
  const { globe, arcsReceived } = await page.evaluate(() => JSON.parse(JSON.stringify(window.viralGlobe)));
  console.log(`${args.out}: ${arcsReceived} arcs received, ${globe.inFlight} in flight (budget ${globe.budget}), ${globe.litCells} cells lit`);
} finally {
  await browser.close();
}
