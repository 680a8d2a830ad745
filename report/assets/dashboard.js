// Draws the dashboard from the gold figures embedded in the page (#dashboard-data): tiles,
// charts (Chart.js), tables and the retention heatmap, all summed over the date range the reader
// picks. The range and the breakdown live in the URL's fragment, so a reload keeps them.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  // Okabe-Ito: told apart with the common kinds of colour blindness.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const DAY_MS = 86400000;
  const number = new Intl.NumberFormat("en");
  const percent = (v) => `${(v * 100).toFixed(1)}%`;
  const duration = (s) => (s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);
  const addDays = (date, n) => new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
  const spanDays = (from, to) => Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS) + 1;
  const inRange = (date, r) => date >= r.from && date <= r.to;
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const element = (tag, attributes = {}, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };

  Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  Chart.defaults.font.size = 13;
  Chart.defaults.color = "#1d2430";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.tooltip.titleFont = { size: 13, weight: "bold" };
  Chart.defaults.plugins.tooltip.bodyFont = { size: 13 };
  Chart.defaults.plugins.legend.labels.boxWidth = 14;

  const days = data.days;
  const firstDate = days.length ? days[0].date : null;
  const lastDate = days.length ? days[days.length - 1].date : null;
  const today = data.generated_at.slice(0, 10);
  const complete = days.filter((d) => d.date < today);
  // Presets end on the latest complete day; the day in progress is picked by hand.
  const presetEnd = complete.length ? complete[complete.length - 1].date : lastDate;

  const presetRange = (preset) => {
    if (!firstDate) return { from: null, to: null };
    if (preset === "all") return { from: firstDate, to: lastDate };
    const from = addDays(presetEnd, 1 - Number(preset));
    return { from: from < firstDate ? firstDate : from, to: presetEnd };
  };

  /** `r` ordered and within the days gold holds, or null when it holds none of them. */
  const clamp = (r) => {
    const isDate = (d) => /^\d{4}-\d{2}-\d{2}$/.test(d || "");
    if (!firstDate || !isDate(r.from) || !isDate(r.to)) return null;
    let [a, b] = r.from <= r.to ? [r.from, r.to] : [r.to, r.from];
    a = a < firstDate ? firstDate : a;
    b = b > lastDate ? lastDate : b;
    return a <= b ? { from: a, to: b } : null;
  };
  const state = { range: presetRange("7"), dimension: "device" };
  const fromHash = new URLSearchParams(location.hash.slice(1));
  state.range = clamp({ from: fromHash.get("from"), to: fromHash.get("to") }) || state.range;
  if (["device", "country", "source"].includes(fromHash.get("by"))) state.dimension = fromHash.get("by");

  /** Every calendar date of the range (a day gold lacks is a gap in the charts). */
  const calendar = (r) => {
    const out = [];
    for (let d = r.from; d <= r.to; d = addDays(d, 1)) out.push(d);
    return out;
  };

  /** The range's headline figures, as gold defines them, from the days of the range. */
  const figures = (r) => {
    const ds = days.filter((d) => inRange(d.date, r));
    if (!ds.length) return null;
    const sessions = sum(ds.map((d) => d.sessions));
    const weighted = (f) => (sessions ? sum(ds.map((d) => f(d) * d.sessions)) / sessions : 0);
    return {
      days: ds.length,
      dau: sum(ds.map((d) => d.dau)) / ds.length,
      sessions,
      page_views: sum(ds.map((d) => d.page_views)),
      conversion_rate: weighted((d) => d.conversion_rate),
      bounce_rate: weighted((d) => d.bounce_rate),
      avg_session_duration_s: weighted((d) => d.avg_session_duration_s),
    };
  };

  const TILES = [
    ["dau", "Daily active users (average)", (v) => number.format(Math.round(v))],
    ["sessions", "Sessions", number.format],
    ["page_views", "Page views", number.format],
    ["conversion_rate", "Conversion rate", percent],
    ["bounce_rate", "Bounce rate", percent],
    ["avg_session_duration_s", "Avg session duration", duration],
  ];

  function drawTiles(r) {
    const n = spanDays(r.from, r.to);
    const now = figures(r);
    const before = { from: addDays(r.from, -n), to: addDays(r.from, -1) };
    const comparable = calendar(before).every((d) => days.some((x) => x.date === d));
    const then = comparable ? figures(before) : null;
    const period = n === 1 ? "the day before" : `the ${n} days before`;
    const tiles = document.getElementById("tiles");
    tiles.replaceChildren();
    for (const [key, label, show] of TILES) {
      const value = now ? now[key] : 0;
      const tile = element("div", { class: "tile", "data-metric": key, "data-value": String(value) });
      tile.append(element("div", { class: "label" }, label), element("div", { class: "value" }, now ? show(value) : "-"));
      let change = `no figures for ${period}`;
      if (!now) change = "no figures in this range";
      else if (then && then[key] !== 0) change = `${(((value - then[key]) / then[key]) * 100).toFixed(1).replace(/^(?!-)/, "+")}% vs ${period}`;
      else if (then) change = `n/a vs ${period}`;
      tile.append(element("div", { class: "change" }, change));
      tiles.append(tile);
    }
  }

  const charts = {};
  const canvas = (name) => document.querySelector(`[data-chart="${name}"] canvas`);
  function draw(name, config) {
    if (charts[name]) charts[name].destroy();
    charts[name] = new Chart(canvas(name), config);
  }
  const axis = (title, extra = {}) => ({ title: { display: true, text: title, font: { size: 13 } }, ...extra });
  const countAxis = (title) => axis(title, { beginAtZero: true, ticks: { precision: 0 } });
  const shareAxis = (title) => axis(title, { beginAtZero: true, ticks: { callback: (v) => `${Math.round(v * 100)}%` } });
  const dayAxis = axis("date (UTC)", { ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 } });
  const overTime = { interaction: { mode: "index", intersect: false }, plugins: { legend: { position: "bottom" } } };
  const line = (label, values, i) => ({
    label, data: values, borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
    borderWidth: 2, pointRadius: 2.5, pointHoverRadius: 5, spanGaps: false,
  });
  const countTooltip = { callbacks: { label: (c) => `${c.dataset.label}: ${number.format(c.parsed.y)}` } };

  function drawOverTime(r) {
    const dates = calendar(r);
    const byDate = new Map(days.map((d) => [d.date, d]));
    const series = (f) => dates.map((d) => (byDate.has(d) ? f(byDate.get(d)) : null));
    draw("active_users", {
      type: "line",
      data: { labels: dates, datasets: [line("DAU", series((d) => d.dau), 0), line("WAU", series((d) => d.wau), 1), line("MAU", series((d) => d.mau), 2)] },
      options: { ...overTime, plugins: { ...overTime.plugins, tooltip: countTooltip }, scales: { x: dayAxis, y: countAxis("users") } },
    });
    draw("traffic", {
      type: "line",
      data: { labels: dates, datasets: [line("sessions", series((d) => d.sessions), 0), line("page views", series((d) => d.page_views), 1)] },
      options: { ...overTime, plugins: { ...overTime.plugins, tooltip: countTooltip }, scales: { x: dayAxis, y: countAxis("count per day") } },
    });

    const rows = data.sessions_by.filter((s) => s.dimension === state.dimension && inRange(s.date, r));
    const totals = new Map();
    for (const s of rows) totals.set(s.value, (totals.get(s.value) || 0) + s.sessions);
    const values = [...totals.keys()].sort((a, b) => (a === "other") - (b === "other") || totals.get(b) - totals.get(a) || a.localeCompare(b));
    const cell = new Map(rows.map((s) => [`${s.date}|${s.value}`, s]));
    const sessionsBy = values.map((v, i) => ({
      label: v, data: dates.map((d) => (cell.get(`${d}|${v}`) || { sessions: 0 }).sessions),
      backgroundColor: PALETTE[i % PALETTE.length], stack: "sessions",
    }));
    const name = { device: "device", country: "country", source: "traffic source" }[state.dimension];
    document.querySelector(".dimension-name").textContent = name;
    draw("sessions_by", {
      type: "bar",
      data: { labels: dates, datasets: sessionsBy },
      options: { ...overTime, plugins: { ...overTime.plugins, tooltip: countTooltip }, scales: { x: { ...dayAxis, stacked: true }, y: { ...countAxis("sessions per day"), stacked: true } } },
    });
    const conversionBy = values.map((v, i) =>
      line(v, dates.map((d) => { const s = cell.get(`${d}|${v}`); return s && s.sessions ? s.conversions / s.sessions : null; }), i));
    draw("conversion_by", {
      type: "line",
      data: { labels: dates, datasets: conversionBy },
      options: {
        ...overTime,
        plugins: { ...overTime.plugins, tooltip: { callbacks: { label: (c) => {
          const s = cell.get(`${dates[c.dataIndex]}|${c.dataset.label}`);
          return `${c.dataset.label}: ${percent(c.parsed.y)} (${number.format(s.conversions)} of ${number.format(s.sessions)} sessions)`;
        } } } },
        scales: { x: dayAxis, y: shareAxis("sessions that converted") },
      },
    });
  }

  /** The funnel's steps summed over the range, with the conversion between steps. */
  function funnelSteps(r) {
    const steps = new Map();
    for (const f of data.funnel_daily.filter((f) => inRange(f.date, r))) {
      const s = steps.get(f.step_index) || { step: f.step, users: 0 };
      s.users += f.users;
      steps.set(f.step_index, s);
    }
    const ordered = [...steps.entries()].sort((a, b) => a[0] - b[0]).map(([index, s]) => ({ index, ...s }));
    const first = ordered.length ? ordered[0].users : 0;
    return ordered.map((s, i) => {
      const previous = i ? ordered[i - 1].users : first;
      return { ...s, fromStart: first ? s.users / first : 0, fromPrevious: previous ? s.users / previous : 0 };
    });
  }

  function drawDistributions(r) {
    const steps = funnelSteps(r);
    draw("funnel", {
      type: "bar",
      data: { labels: steps.map((s) => s.step), datasets: [{ label: "users", data: steps.map((s) => s.users), backgroundColor: PALETTE[0] }] },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => {
          const s = steps[c.dataIndex];
          return [`${number.format(s.users)} user-days`, `${percent(s.fromPrevious)} of the step before`, `${percent(s.fromStart)} of the first step`];
        } } } },
        scales: { x: countAxis("user-days"), y: axis("step") },
      },
    });
    const funnel = document.querySelector('[data-list="funnel"]');
    funnel.replaceChildren();
    const head = element("tr");
    head.append(element("th", {}, "step"), element("th", { class: "n" }, "users"), element("th", { class: "n" }, "from start"), element("th", { class: "n" }, "from step before"));
    funnel.append(head);
    for (const s of steps) {
      const tr = element("tr", { "data-key": s.step, "data-value": String(s.users) });
      tr.append(element("td", {}, `${s.index}. ${s.step}`), element("td", { class: "n" }, number.format(s.users)),
        element("td", { class: "n" }, percent(s.fromStart)), element("td", { class: "n" }, percent(s.fromPrevious)));
      funnel.append(tr);
    }
    const binned = (name, title, bins, rows, color) => {
      const counts = bins.map((_, i) => sum(rows.filter((d) => inRange(d.date, r)).map((d) => d.counts[i])));
      draw(name, {
        type: "bar",
        data: { labels: bins, datasets: [{ label: "sessions", data: counts, backgroundColor: color }] },
        options: { plugins: { legend: { display: false }, tooltip: countTooltip }, scales: { x: axis(title), y: countAxis("sessions") } },
      });
    };
    binned("session_duration", "session duration", data.duration_bins, data.duration_daily, PALETTE[0]);
    binned("events_per_session", "events in the session", data.events_bins, data.events_daily, PALETTE[2]);
  }

  function list(key, head, rows) {
    const table = document.querySelector(`[data-list="${key}"]`);
    table.replaceChildren();
    const tr = element("tr");
    tr.append(element("th", {}, head[0]), element("th", { class: "n" }, head[1]));
    table.append(tr);
    if (!rows.length) {
      const empty = element("tr");
      empty.append(element("td", { colspan: "2", class: "empty" }, "none in this range"));
      table.append(empty);
    }
    for (const [k, v] of rows) {
      const row = element("tr", { "data-key": k, "data-value": String(v) });
      row.append(element("td", {}, k), element("td", { class: "n" }, number.format(v)));
      table.append(row);
    }
  }
  const top = (pairs) => {
    const totals = new Map();
    for (const [k, v] of pairs) totals.set(k, (totals.get(k) || 0) + v);
    return [...totals.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10);
  };

  function drawLists(r) {
    const pages = data.pages_daily.filter((p) => inRange(p.date, r));
    list("top_pages", ["page", "page views"], top(pages.map((p) => [p.page_path, p.page_views])));
    list("entry_pages", ["page", "sessions"], top(pages.map((p) => [p.page_path, p.entries])));
    const sessions = (dimension) => top(data.sessions_by.filter((s) => s.dimension === dimension && inRange(s.date, r)).map((s) => [s.value, s.sessions]));
    list("sources", ["utm_source, else referrer", "sessions"], sessions("source"));
    list("devices", ["device", "sessions"], sessions("device"));
    list("countries", ["country", "sessions"], sessions("country"));
  }

  /** Cohorts first seen in a week that overlaps the range; a cell per week after. */
  function drawRetention(r) {
    const cohorts = data.retention.filter((c) => c.week <= r.to && addDays(c.week, 6) >= r.from);
    const box = document.getElementById("retention");
    box.replaceChildren();
    if (!cohorts.length) {
      box.append(element("p", { class: "empty" }, data.retention.length ? "No cohort starts in this range." : "No cohorts yet (the exporter computes them)."));
      return;
    }
    const weeks = Math.max(...cohorts.map((c) => c.active.length));
    const table = element("table", { "data-retention": "" });
    const head = element("tr");
    head.append(element("th", {}, "first seen (week of)"), element("th", { class: "n" }, "users"));
    for (let w = 0; w < weeks; w++) head.append(element("th", { class: "n" }, `week ${w}`));
    table.append(head);
    for (const c of cohorts) {
      const tr = element("tr");
      tr.append(element("td", {}, c.week), element("td", { class: "n" }, number.format(c.users)));
      c.active.forEach((active, w) => {
        const share = active / Math.max(c.users, 1);
        const td = element("td", {
          class: "cell", "data-cohort": c.week, "data-week": String(w), "data-active": String(active),
          title: `${number.format(active)} of ${number.format(c.users)} users active in week ${w}`,
          style: `background:rgba(0,114,178,${share.toFixed(2)});color:${share > 0.55 ? "#fff" : "#1d2430"}`,
        }, `${Math.round(share * 100)}%`);
        tr.append(td);
      });
      table.append(tr);
    }
    box.append(table);
  }

  const from = document.getElementById("range-from");
  const to = document.getElementById("range-to");
  for (const input of [from, to]) {
    if (firstDate) { input.min = firstDate; input.max = lastDate; }
  }

  function render() {
    const r = state.range;
    from.value = r.from || "";
    to.value = r.to || "";
    for (const b of document.querySelectorAll("[data-preset]")) {
      const p = presetRange(b.dataset.preset);
      b.setAttribute("aria-pressed", String(Boolean(firstDate) && p.from === r.from && p.to === r.to));
    }
    document.getElementById("dimension").value = state.dimension;
    document.getElementById("data-range").textContent = firstDate ? `gold holds ${firstDate} to ${lastDate}` : "no data yet";
    if (!firstDate) {
      document.getElementById("range-label").textContent = "Gold is empty.";
      return;
    }
    const n = spanDays(r.from, r.to);
    document.getElementById("range-label").textContent =
      `Showing ${r.from} to ${r.to} (${n} ${n === 1 ? "day" : "days"}${r.to >= today ? ", including the day in progress" : ""})`;
    drawTiles(r);
    drawOverTime(r);
    drawDistributions(r);
    drawLists(r);
    drawRetention(r);
    history.replaceState(null, "", `#from=${r.from}&to=${r.to}&by=${state.dimension}`);
  }

  /** Shows `range` (clamped to the days gold holds); a range outside them changes nothing. */
  function pick(range) {
    const r = clamp(range);
    if (r) state.range = r;
    render();
  }
  for (const b of document.querySelectorAll("[data-preset]")) b.addEventListener("click", () => pick(presetRange(b.dataset.preset)));
  from.addEventListener("change", () => pick({ from: from.value, to: to.value }));
  to.addEventListener("change", () => pick({ from: from.value, to: to.value }));
  document.getElementById("dimension").addEventListener("change", (e) => { state.dimension = e.target.value; render(); });

  window.dashboard = { charts, data, pick, state };
  render();
})();
