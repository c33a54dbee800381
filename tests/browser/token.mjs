// Drives the browser page of a server that wants a read token, as a person would: opens it
// without one, sees the page ask for it (and not retry), types it in, and watches the feed arrive.
// Prints what it saw as JSON; exits non-zero with the reason when the page does not do that.
//
//   node tests/browser/token.mjs --url http://127.0.0.1:8080 --campaign C --token SECRET --out DIR
import { parseArgs } from "node:util";
import { finish, launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: { url: { type: "string" }, campaign: { type: "string" }, token: { type: "string" }, out: { type: "string" } },
});
const browser = await launch();
const report = {};
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  let sockets = 0;
  page.on("websocket", () => sockets++);
  await page.goto(`${args.url}/?campaign=${args.campaign}&view=map`);
  await page.waitForSelector("[data-testid=token-form]", { state: "visible", timeout: 15_000 })
    .catch(() => { throw new Error("the page never asked for the token"); });
  report.asked = await page.textContent("[data-testid=connection]");
  await page.waitForTimeout(2_000);
  report.socketsWithoutToken = sockets;
  if (sockets > 0) problems.push(`${sockets} websockets tried without a token`);
  await page.screenshot({ path: `${args.out}/token.png` });
  await page.fill("[data-testid=token]", args.token);
  await page.click("[data-testid=token-form] button");
  await page.waitForFunction(() => window.viralGlobe?.connection === "open" && window.viralGlobe.arcsReceived > 0,
    null, { timeout: 15_000 }).catch(() => { throw new Error("no arcs after the token was given"); });
  report.arcs = await page.evaluate(() => window.viralGlobe.arcsReceived);
  report.tokenInUrl = new URL(page.url()).searchParams.get("token") === args.token;
  if (!report.tokenInUrl) problems.push("the token is not kept in the address");
} catch (e) {
  problems.push(e.message);
}
await finish(browser, report, problems);
