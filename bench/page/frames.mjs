// The page's globe under load, for the benchmark suite: headless Chromium (WebGL in software,
// SwiftShader, as in the tests) replays the demo's launch at an hour a second, when about 25,000
// arcs a second arrive and the globe's 20,000 slots are all in flight, and times the frames
// (requestAnimationFrame intervals, measured in the page). Prints one row of the suite's table.
//
//   node bench/page/frames.mjs --url http://127.0.0.1:8080
import { parseArgs } from "node:util";
import { launch } from "../../tests/browser/chromium.mjs";

const { values: args } = parseArgs({ options: { url: { type: "string" }, seconds: { type: "string", default: "8" } } });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${args.url}/?campaign=bones-brigade&mode=replay`);
  await page.waitForFunction(() => window.viralGlobe?.clock && window.viralGlobe.globe, null, { timeout: 30_000 });
  await page.selectOption("[data-testid=speed]", "3600");
  await page.waitForFunction(() => window.viralGlobe.inFlight >= 19_000, null, { timeout: 60_000, polling: 200 });
  const measured = await page.evaluate((seconds) => new Promise((done) => {
    const times = [];
    const inFlight = [];
    const arcs0 = window.viralGlobe.arcsReceived;
    const t0 = performance.now();
    const loop = (t) => {
      times.push(t);
      inFlight.push(window.viralGlobe.inFlight);
      if (t - t0 < seconds * 1_000) requestAnimationFrame(loop);
      else done({ times, inFlight, arcs: window.viralGlobe.arcsReceived - arcs0, ms: t - t0 });
    };
    requestAnimationFrame(loop);
  }), Number(args.seconds));
  const gaps = measured.times.slice(1).map((t, i) => t - measured.times[i]).sort((a, b) => a - b);
  const at = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))];
  const meanInFlight = measured.inFlight.reduce((a, b) => a + b, 0) / measured.inFlight.length;
  const arrivals = measured.arcs / (measured.ms / 1_000);
  const k = (n) => `${(n / 1_000).toFixed(1)} k`;
  console.log(`| page globe frame interval, ${k(meanInFlight)} arcs in flight, ${k(arrivals)} arriving a second (headless Chromium, software WebGL) `
    + `| median ${at(0.5).toFixed(0)} ms, p95 ${at(0.95).toFixed(0)} ms (${gaps.length} frames) | report | — |`);
} finally {
  await browser.close();
}
