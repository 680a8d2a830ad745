// Keeps a served dashboard open in headless Chromium, for cli/tests/end_to_end/serve.rs: prints
// one JSON line when the page has loaded (its gold version and headline DAU), then waits until the
// page has reloaded itself onto another gold version (its script polls /version) and prints the
// same for the new page. Exits 1 if that does not happen within TIMEOUT_MS.
//
// Environment: CHROMIUM, PAGE_URL, TIMEOUT_MS.
import puppeteer from "puppeteer-core";

const { CHROMIUM, PAGE_URL, TIMEOUT_MS } = process.env;
const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
const errors = [];
const shown = (page) => page.evaluate(() => ({
  version: document.body.dataset.goldVersion,
  dau: document.querySelector('[data-headline="dau"]')?.dataset.value ?? null,
  tiles: document.querySelectorAll(".tile").length,
}));
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(PAGE_URL, { waitUntil: "load" });
  const first = await shown(page);
  console.log(JSON.stringify(first));
  await page.waitForFunction((v) => document.body && document.body.dataset.goldVersion !== v && window.dashboard !== undefined,
    { timeout: Number(TIMEOUT_MS), polling: 100 }, first.version);
  console.log(JSON.stringify({ ...(await shown(page)), errors }));
} finally {
  await browser.close();
}
