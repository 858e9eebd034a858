// Real-browser test of the reports web page, run by the Go test TestBrowser:
//
//   REPORTS_URL=http://127.0.0.1:PORT/ node report.mjs
//
// It drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) with
// playwright-core, which never downloads a browser: open the page, start a
// report, see progress and then the download link appear, download the
// .xlsx; then start a report with a bad period and see the error. It prints
// one JSON line with what it saw and exits 0, or prints why and exits 1.
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.REPORTS_URL;
if (!url) {
  console.error("REPORTS_URL is not set");
  process.exit(2);
}
const step = 20_000; // ms, per wait

const userDataDir = mkdtempSync(join(tmpdir(), "kafkarpc-reports-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    acceptDownloads: true,
    timeout: 30_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });

  await page.goto(url, { waitUntil: "load" });
  const from = await page.inputValue("#from");
  const to = await page.inputValue("#to");
  if (!/^\d{4}-\d\d-\d\d$/.test(from) || !/^\d{4}-\d\d-\d\d$/.test(to)) {
    throw new Error(`the form should default to last month, has from=${from} to=${to}`);
  }

  // A good report: progress, then the download link.
  await page.click("#start");
  await page.waitForSelector("#log li.progress", { timeout: step });
  await page.waitForSelector("#download:not([hidden])", { timeout: step });
  const progress = await page.$$eval("#log li.progress", (els) => els.map((e) => e.textContent));
  const state = await page.getAttribute("#state", "data-state");
  const stateText = await page.textContent("#state");
  const href = await page.getAttribute("#download", "href");
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: step }), page.click("#download")]);
  const file = await download.path();
  const bytes = readFileSync(file);
  const zip = bytes.subarray(0, 2).toString("latin1"); // an .xlsx is a zip: "PK"

  // A bad period: the worker's error shows on the page.
  await page.fill("#from", "2026-11-01");
  await page.fill("#to", "2026-10-01");
  await page.click("#start");
  await page.waitForSelector("#error:not([hidden])", { timeout: step });
  const errorCode = await page.getAttribute("#error", "data-code");
  const errorText = await page.textContent("#error");

  console.log(
    JSON.stringify({
      from,
      to,
      progress,
      state,
      stateText,
      href,
      download: { name: download.suggestedFilename(), size: bytes.length, zip },
      errorCode,
      errorText,
      pageErrors,
    }),
  );
} catch (err) {
  console.error(err && err.stack ? err.stack : String(err));
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
