// Reads the dashboard back as headless Chromium renders it, for cli/tests/end_to_end/browser.rs,
// which compares what it prints with the gold tables. It prints one JSON object: the tiles,
// chart data, tables and retention cells of the default range; the tooltip shown when the mouse
// is on the last DAU point; the tiles after the date range is changed to RANGE_FROM..RANGE_TO;
// console errors and requests that left the page's origin; whether a phone-width page scrolls
// sideways. Screenshots at desktop and phone widths go to SHOT_DIR.
//
// Environment: CHROMIUM (the browser), PAGE_URL, RANGE_FROM, RANGE_TO (YYYY-MM-DD), SHOT_DIR.
import puppeteer from "puppeteer-core";

const { CHROMIUM, PAGE_URL, RANGE_FROM, RANGE_TO, SHOT_DIR } = process.env;
const origin = new URL(PAGE_URL).origin;

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { console_errors: [], foreign_requests: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
  page.on("pageerror", (e) => result.console_errors.push(String(e)));
  page.on("request", (r) => {
    const url = r.url();
    const local = url.startsWith("data:") || (origin === "null" ? url.startsWith("file:") : url.startsWith(origin));
    if (!local) result.foreign_requests.push(url);
  });
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(PAGE_URL, { waitUntil: "load" });
  await page.waitForFunction(() => window.dashboard !== undefined, { timeout: 30_000 });

  const read = () => page.evaluate(() => ({
    range: { from: document.getElementById("range-from").value, to: document.getElementById("range-to").value },
    range_label: document.getElementById("range-label").textContent,
    tiles: [...document.querySelectorAll(".tile")].map((t) => ({
      metric: t.dataset.metric,
      value: Number(t.dataset.value),
      shown: t.querySelector(".value").textContent,
      change: t.querySelector(".change").textContent,
    })),
    charts: Object.fromEntries([...document.querySelectorAll("figure[data-chart]")].map((f) => {
      const chart = Chart.getChart(f.querySelector("canvas"));
      return [f.dataset.chart, chart ? {
        labels: chart.data.labels,
        datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
        width: chart.width,
      } : null];
    })),
    lists: Object.fromEntries([...document.querySelectorAll("table[data-list]")].map((t) => [
      t.dataset.list,
      [...t.querySelectorAll("tr[data-key]")].map((r) => [r.dataset.key, Number(r.dataset.value)]),
    ])),
    retention: [...document.querySelectorAll("td[data-cohort]")].map((c) => ({
      cohort: c.dataset.cohort, week: Number(c.dataset.week), active: Number(c.dataset.active), shown: c.textContent,
    })),
    text_sizes: [...document.querySelectorAll("body *")]
      .filter((e) => e.childNodes.length && [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
      .map((e) => parseFloat(getComputedStyle(e).fontSize)),
    chart_font_size: Chart.defaults.font.size,
  }));
  result.initial = await read();

  // Hover the last DAU point of the active-users chart: its tooltip shows the values.
  result.hover = await page.evaluate(() => {
    const canvas = document.querySelector('[data-chart="active_users"] canvas');
    canvas.scrollIntoView({ block: "center" });
    const chart = Chart.getChart(canvas);
    const points = chart.getDatasetMeta(0).data;
    let index = chart.data.datasets[0].data.length - 1;
    while (index > 0 && chart.data.datasets[0].data[index] === null) index--;
    const box = canvas.getBoundingClientRect();
    return { index, date: chart.data.labels[index], x: box.left + points[index].x, y: box.top + points[index].y };
  });
  await page.mouse.move(result.hover.x, result.hover.y);
  await page.waitForFunction(() => Chart.getChart(document.querySelector('[data-chart="active_users"] canvas')).tooltip.opacity > 0, { timeout: 10_000 });
  Object.assign(result.hover, await page.evaluate(() => {
    const tooltip = Chart.getChart(document.querySelector('[data-chart="active_users"] canvas')).tooltip;
    return { title: tooltip.title, lines: tooltip.body.flatMap((b) => b.lines) };
  }));

  // Another date range, picked in the range inputs.
  await page.evaluate((from, to) => {
    for (const [id, value] of [["range-from", from], ["range-to", to]]) {
      const input = document.getElementById(id);
      input.value = value;
      input.dispatchEvent(new Event("change"));
    }
  }, RANGE_FROM, RANGE_TO);
  result.picked = await read();

  // All of history (every retention cohort), then the breakdown by traffic source.
  await page.click('[data-preset="all"]');
  await page.select("#dimension", "source");
  result.all = await read();
  result.location_hash = await page.evaluate(() => location.hash);
  await page.screenshot({ path: `${SHOT_DIR}/dashboard-desktop.png`, fullPage: true });

  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
  await page.waitForFunction(() => Chart.getChart(document.querySelector('[data-chart="active_users"] canvas')).width <= 390, { timeout: 10_000 });
  result.phone = await page.evaluate(() => ({
    scroll_width: document.documentElement.scrollWidth,
    viewport_width: window.innerWidth,
  }));
  // The top of the page, as a phone shows it on opening and a little scrolling.
  await page.screenshot({ path: `${SHOT_DIR}/dashboard-phone.png`, clip: { x: 0, y: 0, width: 390, height: 1700 }, captureBeyondViewport: true });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
