// Embeds the globe as a web developer would, on a page of another origin: packs the npm package
// (assets/embed, `npm pack`), installs the tarball into a scratch site, serves that site on its own
// loopback port, and opens it in Chromium. On it: <viral-globe> with a token for the campaign (it
// must draw arcs and tell the host page through its events), the same element with a token for
// another campaign (it must be refused and say why), and the iframe form (/embed). Prints what it
// saw as JSON; exits non-zero with the reasons when something is wrong.
//
//   node tests/browser/embed.mjs --url http://127.0.0.1:8080 --campaign C --token T --other-token T2
//     --host-port 8081 --out DIR
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { finish, launch } from "./chromium.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" }, campaign: { type: "string" }, token: { type: "string" },
    "other-token": { type: "string" }, "host-port": { type: "string" }, out: { type: "string" },
  },
});
const report = {};
const problems = [];

// The package, as `npm pack` makes it, installed into a site of its own.
const site = mkdtempSync(join(tmpdir(), "viral-globe-site-"));
const packageDir = fileURLToPath(new URL("../../assets/embed", import.meta.url));
const npm = (argv, cwd) => execFileSync("npm", [...argv, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8" });
const [packed] = JSON.parse(npm(["pack", "--json", "--pack-destination", site], packageDir));
report.tarball = { name: packed.filename, files: packed.files.map((f) => f.path).sort() };
for (const file of ["package.json", "viral-globe.js", "viral-globe.d.ts", "README.md"]) {
  if (!report.tarball.files.includes(file)) problems.push(`the tarball lacks ${file}`);
}
writeFileSync(join(site, "package.json"), JSON.stringify({ name: "scratch-site", private: true }));
npm(["install", "--prefer-offline", join(site, packed.filename)], site);

const attributes = (token) => `server="${args.url}" campaign="${args.campaign}" token="${token}"`;
writeFileSync(join(site, "index.html"), `<!doctype html>
<meta charset="utf-8"><title>A client's campaign page</title>
<h1>Our launch, live</h1>
<viral-globe id="ours" ${attributes(args.token)} max-rate="200" style="width: 560px; height: 360px"></viral-globe>
<viral-globe id="theirs" ${attributes(args["other-token"])} view="map" style="width: 560px; height: 200px"></viral-globe>
<iframe id="framed" src="${args.url}/embed?campaign=${args.campaign}&token=${args.token}&view=map&hud=off"
  width="560" height="300" style="border: 0"></iframe>
<script type="importmap">{ "imports": { "viralglobe-globe": "./node_modules/viralglobe-globe/viral-globe.js" } }</script>
<script type="module">
  import { ViralGlobe } from "viralglobe-globe";
  window.heard = { hello: 0, arc: 0, refused: null, kinds: {} };
  const ours = document.getElementById("ours");
  ours.addEventListener("hello", () => window.heard.hello++);
  ours.addEventListener("arc", (e) => { window.heard.arc++; window.heard.kinds[e.detail.kind] = (window.heard.kinds[e.detail.kind] || 0) + 1; });
  document.getElementById("theirs").addEventListener("refused", (e) => (window.heard.refused = e.detail));
  window.isViralGlobe = ours instanceof ViralGlobe;
</script>
`);

const types = { ".html": "text/html", ".js": "text/javascript", ".json": "application/json", ".ts": "text/plain" };
const host = createServer((req, res) => {
  let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  if (path === "/") path = "/index.html";
  if (path === "/favicon.ico") return res.writeHead(204).end();
  try {
    const body = readFileSync(join(site, path));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => host.listen(Number(args["host-port"]), "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${args["host-port"]}`;
report.origin = origin;

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 960 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && !/403|401/.test(m.text()) && problems.push(`console: ${m.text()}`));
  await page.goto(origin);
  await page.waitForFunction(() => window.heard?.arc > 20 && document.getElementById("ours").info().drawn > 0, null, { timeout: 30_000 })
    .catch(() => { throw new Error("the embedded globe drew no arcs"); });
  report.ours = await page.evaluate(() => ({ ...document.getElementById("ours").info(), heard: window.heard, isViralGlobe: window.isViralGlobe }));
  if (report.ours.view !== "globe") problems.push(`the globe fell back to ${report.ours.view}`);
  if (report.ours.heard.hello !== 1) problems.push(`${report.ours.heard.hello} hello events`);
  if (!report.ours.isViralGlobe) problems.push("the package's ViralGlobe is not the element's class");
  report.hud = await page.evaluate(() => document.getElementById("ours").shadowRoot.querySelector(".hud").textContent);
  if (!/shares/.test(report.hud)) problems.push(`the HUD shows ${report.hud}`);

  await page.waitForFunction(() => window.heard.refused, null, { timeout: 15_000 })
    .catch(() => { throw new Error("the element with another campaign's token was not refused"); });
  report.theirs = await page.evaluate(() => ({
    ...document.getElementById("theirs").info(),
    shown: document.getElementById("theirs").shadowRoot.querySelector(".message").textContent,
    heard: window.heard.refused,
  }));
  if (report.theirs.heard.status !== 403) problems.push(`refused with ${report.theirs.heard.status}, not 403`);
  if (!/Access refused: this token may not read campaign/.test(report.theirs.shown)) problems.push(`it shows "${report.theirs.shown}"`);
  if (report.theirs.arcs !== 0) problems.push(`the refused element got ${report.theirs.arcs} arcs`);

  const frame = page.frames().find((f) => f.url().includes("/embed?"));
  if (!frame) throw new Error("no iframe");
  await frame.waitForFunction(() => document.querySelector("viral-globe")?.info().drawn > 0, null, { timeout: 30_000 })
    .catch(() => { throw new Error("the iframe drew no arcs"); });
  report.framed = await frame.evaluate(() => document.querySelector("viral-globe").info());
  if (report.framed.view !== "map") problems.push(`the iframe shows the ${report.framed.view}`);
  await page.waitForTimeout(1_500);
  await page.screenshot({ path: `${args.out}/embed.png` });
} catch (e) {
  problems.push(e.message);
}
host.close();
await finish(browser, report, problems);
