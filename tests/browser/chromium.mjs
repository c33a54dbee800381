// What the page drivers share: Debian's Chromium, headless, with WebGL in software (SwiftShader),
// and the end of a run (the report as JSON on stdout; non-zero exit with the problems found).
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.VIRALGLOBE_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
      "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
      "--disable-sync"],
  });
}

export async function finish(browser, report, problems) {
  await browser.close();
  // The problems first: a failing test's message shows them before the rest of the report.
  console.log(JSON.stringify({ problems, ...report }));
  process.exit(problems.length ? 1 : 0);
}
