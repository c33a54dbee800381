// Drives the browser page of a running server in headless Chromium, as a person would: watches
// the live feed arrive, then pauses, speeds up and seeks a replay. Prints what it saw as JSON;
// exits non-zero with the reason when the page does not do what it should.
//
//   node tests/browser/page.mjs --url http://127.0.0.1:8080 --campaign bones-brigade --out DIR
import { parseArgs } from "node:util";
import { finish, launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, campaign: { type: "string" }, out: { type: "string" } },
});
const browser = await launch();
const report = {};
const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const state = () => page.evaluate(() => JSON.parse(JSON.stringify(window.viralGlobe)));
  // Polled on a timer, not on animation frames: software WebGL may draw only a few a second.
  const waitFor = (predicate, arg, what, timeout = 15_000) =>
    page.waitForFunction(predicate, arg, { timeout, polling: 50 }).catch(() => { throw new Error(`timed out waiting for ${what}`); });

  // The globe, the default view: WebGL, arcs drawn in their colours in one draw call, a drag turns it.
  await page.goto(`${args.url}/?campaign=${args.campaign}`);
  await waitFor(() => window.viralGlobe?.connection === "open" && window.viralGlobe.arcsReceived > 200
    && window.viralGlobe.globe, null, "arcs on the globe");
  // The globe's pixels: click arcs in their colour (polled: software WebGL under load may take a
  // few frames to show the first ones).
  const globePixels = () => page.evaluate(() => {
    const canvas = document.querySelector("[data-testid=globe]");
    const copy = document.createElement("canvas");
    [copy.width, copy.height] = [canvas.width, canvas.height];
    const c = copy.getContext("2d");
    c.drawImage(canvas, 0, 0);
    const data = c.getImageData(0, 0, copy.width, copy.height).data;
    let cyan = 0, lit = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (b > 150 && g > 120 && r < 140 && b > r + 60) cyan++;
      if (r + g + b > 60) lit++;
    }
    return { ...window.viralGlobe.globe, cyan, lit, pixels: data.length / 4, view: window.viralGlobe.view };
  });
  for (let tries = 0; tries < 40; tries++) {
    report.globe = await globePixels();
    if (report.globe.cyan > 200) break;
    await page.waitForTimeout(500);
  }
  check(report.globe.view === "globe", `the default view is ${report.globe.view}`);
  check(report.globe.webgl === "webgl2", `the globe draws with ${report.globe.webgl}`);
  check(report.globe.cyan > 200, `few click arcs on the globe: ${report.globe.cyan} pixels`);
  check(report.globe.drawCalls <= 4, `${report.globe.drawCalls} draw calls a frame (the arcs should be one)`);
  const before = report.globe.azimuth;
  const box = await page.locator("[data-testid=globe]").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 200, box.y + box.height / 2, { steps: 10 });
  await page.mouse.up();
  // The camera follows on the next frames (a few a second in software WebGL). Within 5 s the
  // gentle rotation alone turns it about 0.13 rad; the drag, 0.4.
  await waitFor((a) => Math.abs(window.viralGlobe.globe.azimuth - a) > 0.3, before, "the drag to turn the globe", 5_000)
    .catch((e) => problems.push(e.message));
  report.globe.azimuthAfterDrag = (await state()).globe.azimuth;
  // Frame time with the arcs in flight (software WebGL, this machine's CPU).
  const frames0 = (await state()).framesDrawn;
  await page.waitForTimeout(2_000);
  const after = await state();
  report.globe.msPerFrame = 2_000 / Math.max(1, after.framesDrawn - frames0);
  report.globe.inFlight = after.inFlight;
  await page.screenshot({ path: `${args.out}/globe.png` });

  // Live, on the flat map: arcs of every kind arrive and are drawn.
  await page.goto(`${args.url}/?campaign=${args.campaign}&view=map`);
  await waitFor(() => {
    const k = window.viralGlobe?.kinds ?? {};
    return window.viralGlobe.connection === "open" && k.click && k["child share"] && k.signup && k.purchase;
  }, null, "live arcs of every kind");
  await page.waitForTimeout(500);
  const live = await state();
  report.live = { arcs: live.arcsReceived, kinds: live.kinds, inFlight: live.inFlight, framesDrawn: live.framesDrawn };
  report.live.clicksShown = await page.textContent("[data-testid=clicks]");
  // Pixels in the arcs' colours on the map: cyan clicks (outgoing), gold purchases (inbound).
  report.live.pixels = await page.evaluate(() => {
    const c = document.getElementById("map");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const near = (i, [r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60;
    let click = 0, purchase = 0, land = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (near(i, [0x4c, 0xc9, 0xf0])) click++;
      if (near(i, [0xff, 0xd1, 0x66])) purchase++;
      if (near(i, [0x1a, 0x27, 0x44])) land++;
    }
    return { click, purchase, land };
  });
  check(report.live.pixels.land > 10_000, "no land drawn");
  // Land and sea where they are, also along the Arctic, where rings cross the antimeridian.
  report.live.landAt = await page.evaluate(() => Object.fromEntries(
    [[70, 0], [72, -150], [68, -25], [75, 170], [66, 100], [40, -100], [68, 175], [-80, 0]]
      .map(([lat, lon]) => [`${lat},${lon}`, window.viralGlobeMap.landAt(lat, lon)])));
  const sea = ["70,0", "72,-150", "68,-25", "75,170"];
  const land = ["66,100", "40,-100", "68,175", "-80,0"];
  check(sea.every((p) => !report.live.landAt[p]), `land drawn at sea: ${JSON.stringify(report.live.landAt)}`);
  check(land.every((p) => report.live.landAt[p]), `land missing: ${JSON.stringify(report.live.landAt)}`);
  check(await page.isHidden("[data-testid=replay-controls]"), "replay controls shown in live mode");
  check(report.live.pixels.click > 0, "no click arcs drawn");
  check(report.live.clicksShown !== "0", "the click counter shows 0");
  // The demo's loop has just begun: the counters are its own so far, not the whole recording's
  // (and never more).
  const stats = await page.evaluate((c) => fetch(`/v1/campaigns/${c}/stats`).then((r) => r.json()), args.campaign);
  report.live.counters = live.counters;
  report.live.statsClicks = stats.summary.clicks;
  check(live.counters.clicks > 0 && live.counters.clicks < stats.summary.clicks,
    `counters show ${live.counters.clicks} clicks of the recording's ${stats.summary.clicks}`);
  check(live.duplicates === 0 && live.gaps === 0, `the live line had ${live.duplicates} duplicates, ${live.gaps} gaps`);
  // What sharing brought: the top cascade, child shares per post, how soon visits come.
  await waitFor(() => window.viralGlobe.attribution?.top, null, "the attribution panel");
  report.live.attribution = {
    topCascade: await page.textContent("[data-testid=top-cascade]"),
    kFactor: await page.textContent("[data-testid=k-factor]"),
    clickDelay: await page.textContent("[data-testid=click-delay]"),
    topCountry: await page.textContent("[data-testid=top-country]"),
  };
  check(/post: \$[\d,]+, \d+ generations/.test(report.live.attribution.topCascade), `top cascade shows ${report.live.attribution.topCascade}`);
  check(report.live.attribution.kFactor !== "—", "no k-factor shown");
  check(report.live.attribution.topCountry.startsWith("US"), `top country ${report.live.attribution.topCountry}`);
  await page.screenshot({ path: `${args.out}/live.png` });

  // Replay: pause, speed up, seek from the page's own controls (on the flat map: software WebGL
  // at a week a second would take the CPU the test's clock needs).
  await page.goto(`${args.url}/?campaign=${args.campaign}&mode=replay&view=map`);
  await waitFor(() => window.viralGlobe.clock?.playing && window.viralGlobe.arcsReceived > 0, null, "the replay to play");
  await page.click("[data-testid=play]");
  await waitFor(() => window.viralGlobe.clock?.playing === false, null, "the replay to pause");
  const pausedAt = (await state()).clock.ts;
  await page.waitForTimeout(1_500);
  const stillAt = (await state()).clock.ts;
  check(pausedAt === stillAt, `the paused clock moved from ${pausedAt} to ${stillAt}`);
  await page.selectOption("[data-testid=speed]", "604800");
  await waitFor(() => window.viralGlobe.clock?.speed === 604800, null, "the new speed");
  await page.click("[data-testid=play]");
  await page.$eval("[data-testid=seek]", (el) => { el.value = "500"; el.dispatchEvent(new Event("change")); });
  await waitFor(() => {
    const c = window.viralGlobe.clock;
    return c && c.playing && Math.abs((c.ts - c.from) / (c.to - c.from) - 0.5) < 0.05;
  }, null, "the seek to the middle");
  await page.waitForTimeout(800);
  const replay = await state();
  report.replay = {
    pausedAt, clock: replay.clock, arcs: replay.arcsReceived,
    clicksShown: await page.textContent("[data-testid=clicks]"),
    clockShown: await page.textContent("[data-testid=clock]"),
  };
  check(replay.arcsReceived > 0, "no arcs after the seek");
  check(await page.isVisible("[data-testid=replay-controls]"), "no replay controls in replay mode");
  await page.screenshot({ path: `${args.out}/replay.png` });

  // A 390 px phone: nothing wider than the screen, every counter in view. (One page at a time:
  // software WebGL takes the CPU.)
  await page.close();
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  phone.on("pageerror", (e) => problems.push(`page error (phone): ${e.message}`));
  await phone.goto(`${args.url}/?campaign=${args.campaign}`);
  await phone.waitForFunction(() => window.viralGlobe?.connection === "open" && window.viralGlobe.arcsReceived > 0, null, { timeout: 30_000 })
    .catch(() => { throw new Error("timed out waiting for the phone's feed"); });
  report.phone = await phone.evaluate(() => {
    const ids = ["shares", "clicks", "signups", "purchases", "revenue", "generations", "campaign", "mode", "connection"];
    const boxes = Object.fromEntries(ids.map((id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return [id, { left: Math.round(r.left), right: Math.round(r.right), top: Math.round(r.top), bottom: Math.round(r.bottom) }];
    }));
    return { scrollWidth: document.documentElement.scrollWidth, boxes };
  });
  check(report.phone.scrollWidth <= 390, `the phone page is ${report.phone.scrollWidth} px wide`);
  for (const [id, box] of Object.entries(report.phone.boxes)) {
    check(box.left >= 0 && box.right <= 390 && box.bottom > box.top && box.top >= 0 && box.bottom <= 844,
      `${id} is cut off on a phone: ${JSON.stringify(box)}`);
  }
  await phone.screenshot({ path: `${args.out}/phone.png` });
} catch (e) {
  problems.push(e.message);
}
await finish(browser, report, problems);
