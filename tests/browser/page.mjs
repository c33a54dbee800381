// Drives the browser page of a running server in headless Chromium, as a person would: watches
// the live feed arrive on the globe (colours, a tooltip, a filter, a drag, presenter mode) and the
// map, then pauses, speeds up, seeks and ends a replay. Prints what it saw as JSON;
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
  // The globe's pixels, by the arc colour they show (the server's palette; clicks dimmed), inside
  // the Earth's disc (not its blue rim): a pixel counts for a colour when what it adds to the sea
  // points the same way as the colour does, strongly enough.
  const palette = await page.evaluate(() => fetch("/palette.json").then((r) => r.json()));
  const arcColours = () => page.evaluate(({ palette, clickBrightness }) => {
    const canvas = document.querySelector("[data-testid=globe]");
    const copy = document.createElement("canvas");
    [copy.width, copy.height] = [canvas.width, canvas.height];
    const c = copy.getContext("2d");
    c.drawImage(canvas, 0, 0);
    const { width, height } = copy;
    const data = c.getImageData(0, 0, width, height).data;
    const hex = (css) => [1, 3, 5].map((i) => parseInt(css.slice(i, i + 2), 16));
    const sea = [0x0a, 0x12, 0x22];
    const colours = {
      click: hex(palette.generations[0]).map((v) => v * clickBrightness),
      childShare: hex(palette.generations[1]),
      signup: hex(palette.signup),
      purchase: hex(palette.purchase),
    };
    const directions = Object.entries(colours).map(([kind, colour]) => {
      const d = colour.map((v, i) => v - sea[i]);
      const n = Math.hypot(...d);
      return [kind, d.map((v) => v / n), n];
    });
    const counts = Object.fromEntries(Object.keys(colours).map((k) => [k, 0]));
    const globe = window.viralGlobe.globe;
    const radius = 0.93 * (Math.tan(Math.asin(1 / globe.distance)) / Math.tan((19 * Math.PI) / 180)) * (height / 2);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (Math.hypot(x - width / 2, y - height / 2) > radius) continue;
        const i = 4 * (y * width + x);
        const d = [data[i] - sea[0], data[i + 1] - sea[1], data[i + 2] - sea[2]];
        const n = Math.hypot(...d);
        if (n < 50) continue;
        let best = null;
        for (const [kind, u, full] of directions) {
          const cos = (d[0] * u[0] + d[1] * u[1] + d[2] * u[2]) / n;
          if (cos > 0.985 && n > 0.3 * full && (!best || cos > best[1])) best = [kind, cos];
        }
        if (best) counts[best[0]]++;
      }
    }
    return { ...globe, counts, view: window.viralGlobe.view };
  }, { palette, clickBrightness: 0.6 });
  const everyKind = (g) => g.counts.click > 200 && g.counts.childShare > 10 && g.counts.signup > 20 && g.counts.purchase > 20;
  for (let tries = 0; tries < 40; tries++) {
    report.globe = await arcColours();
    if (everyKind(report.globe)) break;
    await page.waitForTimeout(500);
  }
  check(report.globe.view === "globe", `the default view is ${report.globe.view}`);
  check(report.globe.webgl === "webgl2", `the globe draws with ${report.globe.webgl}`);
  check(everyKind(report.globe), `arcs of some kind missing from the globe, pixels: ${JSON.stringify(report.globe.counts)}`);
  check(report.globe.drawCalls <= 4, `${report.globe.drawCalls} draw calls a frame (the arcs should be one)`);

  // The page reads live arcs in the compact encoding: decoded in the page, they are the arcs the
  // JSON feed sends (two sockets side by side, compared arc by arc where their seqs meet).
  report.compact = await page.evaluate(async (campaign) => {
    const { decodeCompact } = await import("/feed.js");
    const base = `ws://${location.host}/v1/live?campaign=${encodeURIComponent(campaign)}`;
    const collect = (url) => new Promise((done) => {
      const arcs = new Map();
      let bytes = 0;
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onmessage = (e) => {
        let list = [];
        if (e.data instanceof ArrayBuffer) {
          bytes += e.data.byteLength;
          list = decodeCompact(new Uint8Array(e.data));
        } else {
          const m = JSON.parse(e.data);
          list = m.type === "arc" ? [m] : m.type === "arcs" ? m.arcs : [];
          if (list.length) bytes += e.data.length;
        }
        for (const a of list) { if (a.type) delete a.type; arcs.set(a.seq, a); }
      };
      setTimeout(() => { ws.close(); done({ arcs, bytes }); }, 2_000);
    });
    const [json, compact] = await Promise.all([collect(base), collect(`${base}&encoding=compact`)]);
    const sorted = (v) => JSON.stringify(v, Object.keys(v).sort()) + JSON.stringify(v.from ?? null) + JSON.stringify(v.to);
    let same = 0, different = 0;
    for (const [seq, arc] of compact.arcs) {
      if (!json.arcs.has(seq)) continue;
      if (sorted(arc) === sorted(json.arcs.get(seq))) same++;
      else different++;
    }
    const perArc = (r) => r.bytes / Math.max(1, r.arcs.size);
    return { same, different, jsonBytesPerArc: perArc(json), compactBytesPerArc: perArc(compact) };
  }, args.campaign);
  check(report.compact.same > 100 && report.compact.different === 0,
    `compact arcs decoded in the page differ from JSON: ${JSON.stringify(report.compact)}`);

  // Hovering an arc says what it is.
  for (let tries = 0; tries < 10 && !report.tooltip?.shown; tries++) {
    const at = await page.evaluate(() => window.viralGlobeGlobe.newestOnScreen());
    if (!at) { await page.waitForTimeout(300); continue; }
    const globeBox = await page.locator("[data-testid=globe]").boundingBox();
    await page.mouse.move(globeBox.x + at.x, globeBox.y + at.y);
    const shown = await waitFor(() => !document.querySelector("[data-testid=tooltip]").hidden, null, "a tooltip", 3_000)
      .then(() => true, () => false);
    report.tooltip = { shown, text: shown ? await page.textContent("[data-testid=tooltip]") : null, under: at.arc.to.city };
  }
  check(report.tooltip?.shown, "no tooltip over an arc");
  check(/^(Visit|Purchase|Sign-up|Share|Campaign post|Conversion).* in .+share \S+ · \d{4}-/.test(report.tooltip?.text ?? ""),
    `the tooltip says ${report.tooltip?.text}`);
  await page.screenshot({ path: `${args.out}/tooltip.png` });
  await page.mouse.move(2, 2);

  // The live clock, the rate, the tables.
  report.panel = {
    campaignTime: await page.textContent("[data-testid=campaign-time]"),
    rate: await page.textContent("[data-testid=rate]"),
    topCity: await page.textContent("[data-testid=top-cities] tbody tr:first-child td:first-child").catch(() => null),
    channels: await page.locator("[data-testid=top-channels] tbody tr").count(),
  };
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(report.panel.campaignTime), `the campaign clock shows ${report.panel.campaignTime}`);
  check(/^[1-9][\d,]*\/s$/.test(report.panel.rate), `the rate shows ${report.panel.rate}`);
  check(report.panel.topCity === "Los Angeles, US", `the top city is ${report.panel.topCity}`);
  check(report.panel.channels === 2, `${report.panel.channels} channels in the table`);

  // A filter: no conversions. The feed is opened again with kind=share,click; once the arcs in
  // flight have faded, no sign-up or purchase is drawn, while the counters still count them all.
  const purchasesBefore = (await state()).counters.purchases;
  await page.uncheck("[data-testid=kind-conversion]");
  await waitFor(() => location.search.includes("kind=share%2Cclick") && window.viralGlobe.connection === "open"
    && window.viralGlobe.arcsReceived > 20, null, "the filtered feed");
  await page.waitForTimeout(3_500);
  const filtered = await arcColours();
  const afterFilter = await state();
  report.filter = { counts: filtered.counts, kinds: afterFilter.kinds, purchasesBefore, purchasesAfter: afterFilter.counters.purchases };
  check(!("purchase" in afterFilter.kinds) && !("signup" in afterFilter.kinds), `conversions arrived through the filter: ${JSON.stringify(afterFilter.kinds)}`);
  const conversions = (g) => g.counts.signup + g.counts.purchase;
  check(conversions(filtered) < conversions(report.globe) / 20, `conversions still drawn: ${JSON.stringify(filtered.counts)}`);
  // (The count of visit pixels varies with how many frames software WebGL draws under load.)
  check(filtered.counts.click > 50, `no visits drawn: ${JSON.stringify(filtered.counts)}`);
  check(afterFilter.counters.purchases > purchasesBefore, `the purchase counter stopped at ${afterFilter.counters.purchases} under the filter`);
  await page.screenshot({ path: `${args.out}/filtered.png` });
  await page.check("[data-testid=kind-conversion]");
  await waitFor(() => !location.search.includes("kind=") && window.viralGlobe.kinds.purchase > 0, null, "conversions again");

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
  report.globe.budget = after.globe.budget;
  report.globe.skipped = after.globe.skipped;
  // The demo's live feed offers more than the budget: it must have left clicks out, and drawn no
  // more than it allows.
  check(after.globe.skipped > 0, "the drawing budget never left a click out");
  check(after.inFlight <= after.globe.budget, `${after.inFlight} arcs in flight, over the budget of ${after.globe.budget}`);
  // Every landing lights the density layer, drawn or not; and no arc stands higher than the lift
  // rule's cap (0.145 of the radius over 0.003 for the line), whatever its length.
  report.globe.litCells = after.globe.litCells;
  report.globe.highestArc = after.globe.highestArc;
  check(after.globe.litCells > 200, `the density layer shows ${after.globe.litCells} lit cells`);
  check(after.globe.highestArc > 0.02 && after.globe.highestArc <= 0.1481, `the highest arc stands ${after.globe.highestArc} radii up`);
  await page.screenshot({ path: `${args.out}/globe.png` });

  // Presenter mode: the controls step aside, the HUD grows, the address keeps it.
  const fontOf = () => page.$eval("[data-testid=shares]", (el) => parseFloat(getComputedStyle(el).fontSize));
  const small = await fontOf();
  await page.click("[data-testid=present]");
  await waitFor(() => document.body.classList.contains("presenter") && location.search.includes("present=1"), null, "presenter mode");
  report.presenter = { font: [small, await fontOf()], filtersHidden: await page.isHidden("[data-testid=filters]") };
  check(report.presenter.font[1] > small * 1.4, `presenter mode's counters are ${report.presenter.font[1]} px against ${small}`);
  check(report.presenter.filtersHidden, "the filters stay in presenter mode");
  await page.screenshot({ path: `${args.out}/presenter.png` });
  // Opened from its address, the page comes back in presenter mode, on its campaign.
  await page.reload();
  await waitFor((c) => document.body.classList.contains("presenter") && window.viralGlobe.campaign === c
    && window.viralGlobe.arcsReceived > 0, args.campaign, "presenter mode from the address");
  await page.click("[data-testid=present]");

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
  report.live.pixels = await page.evaluate(({ palette, clickBrightness }) => {
    const c = document.getElementById("map");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const hex = (css) => [1, 3, 5].map((i) => parseInt(css.slice(i, i + 2), 16));
    const [clickColour, purchaseColour] = [hex(palette.generations[0]).map((v) => v * clickBrightness), hex(palette.purchase)];
    const near = (i, [r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60;
    let click = 0, purchase = 0, land = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (near(i, clickColour)) click++;
      if (near(i, purchaseColour)) purchase++;
      if (near(i, [0x1a, 0x27, 0x44])) land++;
    }
    return { click, purchase, land };
  }, { palette, clickBrightness: 0.6 });
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
  check(/^(\d{1,3}(,\d{3})+|\d{2,3}|\d(\.\d)?)$/.test(report.live.attribution.kFactor), `child shares per post read ${report.live.attribution.kFactor}`);
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

  // Played to the end, the counters are the campaign's statistics.
  await page.$eval("[data-testid=seek]", (el) => { el.value = "998"; el.dispatchEvent(new Event("change")); });
  await waitFor(() => window.viralGlobe.clock && window.viralGlobe.clock.ts >= window.viralGlobe.clock.to, null, "the end of the replay", 30_000);
  const summary = (await page.evaluate((c) => fetch(`/v1/campaigns/${c}/stats`).then((r) => r.json()), args.campaign)).summary;
  const number = (n) => Math.round(n).toLocaleString("en-US");
  const expected = {
    shares: number(summary.shares), clicks: number(summary.clicks), signups: number(summary.goals.signup),
    purchases: number(summary.goals.purchase), revenue: `$${number(summary.revenue_cents / 100)}`,
  };
  const shownCounters = () => Object.fromEntries(["shares", "clicks", "signups", "purchases", "revenue"]
    .map((id) => [id, document.querySelector(`[data-testid=${id}]`).textContent]));
  await waitFor((want) => JSON.stringify(Object.fromEntries(["shares", "clicks", "signups", "purchases", "revenue"]
    .map((id) => [id, document.querySelector(`[data-testid=${id}]`).textContent]))) === want,
  JSON.stringify(expected), "the counters at the end", 5_000).catch(() => {});
  const shown = await page.evaluate(shownCounters);
  report.replayEnd = { shown, expected };
  check(JSON.stringify(shown) === JSON.stringify(expected), `at the end of the replay the counters show ${JSON.stringify(shown)}, the stats ${JSON.stringify(expected)}`);
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
    const ids = ["shares", "clicks", "signups", "purchases", "revenue", "generations", "rate", "campaign", "mode", "view",
      "kind-share", "kind-click", "kind-conversion", "channel", "generation", "present", "connection"];
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
