// A campaign run through tracked links, by real browsers: the marketer's post link is opened, the
// visitor lands on the campaign's own site (another origin, served here) with the code, `vg.js`
// mints the visitor's own link, a second visitor opens that one, shares again and buys. Each
// browser context has its own public address (the server trusts this machine's proxy header) and
// a desktop browser's user agent; a Twitterbot's fetch and a reload are not visits. The server's
// own page, in presenter mode with the post's QR code, shows what happened.
//
//   node tests/browser/links.mjs --url http://127.0.0.1:8080 --campaign C --out DIR
import http from "node:http";
import { parseArgs } from "node:util";
import { finish, launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, campaign: { type: "string" }, out: { type: "string" } },
});
const DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
// Addresses the GeoLite2 City database places in Tokyo and Berlin.
const TOKYO = "1.21.128.10";
const BERLIN = "2.200.244.10";

// The campaign's site: a landing page with the script tag, a share button and a buy button.
const site = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><title>The film</title>
<script src="${args.url}/vg.js"></script>
<h1>The film</h1>
<button id="share">Share on Twitter</button> <button id="buy">Buy, $24.99</button>
<output id="link"></output>
<script>
  document.getElementById("share").onclick = () =>
    viralglobe.share({ channel: "twitter" }).then((url) => (document.getElementById("link").value = url));
  document.getElementById("buy").onclick = () =>
    viralglobe.convert({ goal: "purchase", value_cents: 2499, id: "order-1" })
      .then(() => (document.getElementById("link").value = "bought"));
</script>`);
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
// localhost, not 127.0.0.1: another origin than the server's.
const siteUrl = `http://localhost:${site.address().port}/launch?utm_source=fb`;

const browser = await launch();
const report = {};
const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };

try {
  const created = await fetch(`${args.url}/v1/links`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ campaign: args.campaign, destination: siteUrl, channel: "facebook",
      sharer: "studio", sharer_kind: "cast", lat: 34.05, lon: -118.24, city: "Los Angeles", country: "US" }),
  });
  const post = await created.json();
  check(created.status === 201, `POST /v1/links: ${created.status} ${JSON.stringify(post)}`);
  report.post = post;

  // The stage: the server's page in presenter mode, with the post's QR code.
  const stage = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  stage.on("pageerror", (e) => problems.push(`stage page error: ${e.message}`));
  await stage.goto(`${args.url}/?campaign=${args.campaign}&present=1&qr=${post.code}`);
  await stage.waitForFunction(() => window.viralGlobe?.connection === "open", null, { timeout: 15_000 });

  const visitor = async (address, userAgent = DESKTOP) => {
    const context = await browser.newContext({ userAgent, extraHTTPHeaders: { "x-forwarded-for": address } });
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`site page error: ${e.message}`));
    return page;
  };
  const shareFrom = async (page) => {
    await page.click("#share");
    await page.waitForFunction(() => document.getElementById("link").value !== "", null, { timeout: 10_000 });
    return page.inputValue("#link").catch(() => page.textContent("#link"));
  };

  // Tokyo opens the post's link and lands on the site with its code, kept in the site's storage.
  const tokyo = await visitor(TOKYO);
  await tokyo.goto(post.url);
  report.landed = tokyo.url();
  check(report.landed.startsWith(siteUrl) && report.landed.includes(`vg=${post.code}`), `landed on ${report.landed}`);
  report.stored = await tokyo.evaluate(() => localStorage.getItem("viralglobe.vg"));
  check(report.stored === post.code, `the site stored ${report.stored}`);
  const tokyoLink = await shareFrom(tokyo);
  report.tokyoLink = tokyoLink;
  check(/\/l\/[0-9A-Za-z]{11}$/.test(tokyoLink), `Tokyo's link: ${tokyoLink}`);
  // A reload of the link within the hour is the same visit.
  await tokyo.goto(post.url);

  // A link preview fetches the post's link: redirected, not a visit.
  const bot = await visitor(BERLIN, "Twitterbot/1.0");
  const preview = await bot.goto(post.url);
  check(preview.ok(), `the preview got ${preview.status()}`);

  // Berlin opens Tokyo's link, shares again and buys.
  const berlin = await visitor(BERLIN);
  await berlin.goto(tokyoLink);
  check(berlin.url().includes(`vg=${tokyoLink.slice(-11)}`), `Berlin landed on ${berlin.url()}`);
  report.berlinLink = await shareFrom(berlin);
  await berlin.click("#buy");
  await berlin.waitForFunction(() => document.getElementById("link").value === "bought", null, { timeout: 10_000 });

  // The stage counts three shares, two visits and one purchase of $24.99 as their arcs arrive
  // (unless the page fell behind, which it is told: then its counters are short by what it
  // missed); reopened, it has them whole from the hello.
  const expected = (c) => c.shares === 3 && c.clicks === 2 && c.purchases === 1 && c.revenueCents === 2499;
  const counted = async () => stage.waitForFunction(
    (want) => { const c = window.viralGlobe.counters; return (c.shares === want.shares && c.clicks === want.clicks
      && c.purchases === want.purchases) || window.viralGlobe.lagged > 0; },
    { shares: 3, clicks: 2, purchases: 1 }, { timeout: 15_000, polling: 100 }).catch(() => {});
  await counted();
  report.live = await stage.evaluate(() => ({ counters: window.viralGlobe.counters,
    arcs: window.viralGlobe.arcsReceived, lagged: window.viralGlobe.lagged || 0 }));
  check(expected(report.live.counters) || report.live.lagged > 0,
    `the stage counts ${JSON.stringify(report.live)}`);
  await stage.reload();
  // The socket opens before the hello arrives: wait for the totals, not for "open".
  await stage.waitForFunction((want) => {
    const c = window.viralGlobe?.counters;
    return c && c.shares === want.shares && c.clicks === want.clicks && c.purchases === want.purchases;
  }, { shares: 3, clicks: 2, purchases: 1 }, { timeout: 15_000, polling: 100 }).catch(() => {});
  report.reopened = await stage.evaluate(() => window.viralGlobe.counters);
  check(expected(report.reopened), `the reopened stage counts ${JSON.stringify(report.reopened)}`);
  await stage.waitForFunction(() => {
    const img = document.querySelector("[data-testid=qr] img");
    return img.complete && img.naturalWidth > 0;
  }, null, { timeout: 10_000 }).catch(() => {});
  report.qr = await stage.evaluate(() => {
    const img = document.querySelector("[data-testid=qr] img");
    const box = img.getBoundingClientRect();
    return { loaded: img.complete && img.naturalWidth > 0, width: box.width, visible: box.width > 0 };
  });
  check(report.qr.loaded && report.qr.visible, `the QR code: ${JSON.stringify(report.qr)}`);
  await stage.screenshot({ path: `${args.out}/links-stage.png` });
} catch (e) {
  problems.push(String(e.stack || e));
} finally {
  site.close();
}
await finish(browser, report, problems);
