/* DriftGuard report: builds the page from the embedded JSON with uPlot; fetches nothing.
   Data is only ever set as text (never parsed as HTML), so names from a database cannot inject. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const pad = (n) => String(n).padStart(2, "0");
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const when = (t) => {
    if (t === null || t === undefined) return "";
    const d = new Date(t * 1000);
    return `${DAYS[d.getUTCDay()]} ${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  };
  const duration = (s) => {
    const a = Math.abs(s);
    if (a < 90) return `${Math.round(s)}s`;
    if (a < 5400) return `${Math.round(s / 60)}min`;
    if (a < 172800) return `${(s / 3600).toFixed(a < 36000 ? 1 : 0)}h`;
    return `${(s / 86400).toFixed(1)}d`;
  };
  const number = (x, unit) => {
    if (x === null || x === undefined) return "–";
    if (unit === "s") return duration(x);
    const a = Math.abs(x);
    if (a >= 1e6) return x.toExponential(3);
    if (a >= 100 || Number.isInteger(x)) return x.toLocaleString("en", { maximumFractionDigits: 0 });
    return x.toLocaleString("en", { maximumSignificantDigits: 4 });
  };
  const badge = (state) => el("span", { class: `badge s-${state}` }, state);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // charts are drawn when they come near the viewport: a report of 2,000 checks opens at once
  const charts = new Map();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting && !charts.has(entry.target.dataset.id)) draw(entry.target);
    }
  }, { rootMargin: "400px" });

  /* ---------------------------------------------------------------- theme */
  const stored = (() => { try { return localStorage.getItem("driftguard-theme"); } catch (e) { return null; } })();
  const prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = stored || (prefersDark ? "dark" : "light");

  /* ---------------------------------------------------------------- header */
  document.title = data.title;
  $("#title").textContent = data.title;
  $("#meta").textContent = `${data.state ? data.state + " · " : ""}${when(data.since)} → ${when(data.until)} · ` +
    `generated ${when(data.generated_at)}`;
  for (const note of data.notes) $("#notes").append(el("p", { class: "muted" }, note));

  /* ---------------------------------------------------------------- filters and overview */
  const checks = data.checks;
  const uniq = (values) => [...new Set(values.filter((v) => v))].sort();
  const fill = (select, values) => {
    for (const v of values) select.append(el("option", { value: v }, v));
  };
  fill($("#f-state"), uniq(checks.map((c) => c.state)));
  fill($("#f-source"), uniq(checks.map((c) => c.source)));
  fill($("#f-owner"), uniq(checks.map((c) => c.owner)));
  fill($("#f-tag"), uniq(checks.flatMap((c) => c.tags)));

  const rows = $("#overview-rows");
  const cards = $("#cards");
  const byId = new Map();
  for (const c of checks) {
    const tags = el("td", { class: "wide" }, ...c.tags.map((t) => el("span", { class: "tag" }, t)));
    const row = el("tr", { class: "row", "data-id": c.id },
      el("td", { class: "wide" }, c.source), el("td", {}, c.table || "–"),
      el("td", {}, c.check + (c.metric !== c.check ? `/${c.metric}` : "") + (c.column ? `[${c.column}]` : "")),
      el("td", {}, badge(c.state)), el("td", { class: "wide" }, when(c.since)),
      el("td", { class: "wide" }, c.owner || "–"), tags);
    row.addEventListener("click", () => document.getElementById(`check-${c.id}`).scrollIntoView({ behavior: "smooth" }));
    rows.append(row);
    const card = buildCard(c);
    cards.append(card);
    byId.set(c.id, { check: c, row, card, haystack: [c.label, c.reason, c.owner, c.state, ...c.tags].join(" ").toLowerCase() });
  }
  for (const source of uniq(checks.map((c) => c.source))) {
    const mine = checks.filter((c) => c.source === source);
    const counts = {};
    for (const c of mine) counts[c.state] = (counts[c.state] || 0) + 1;
    const tables = uniq(mine.map((c) => c.table)).length;
    $("#sources").append(el("div", { class: "source" }, el("strong", {}, source),
      ` ${tables} table(s), ${mine.length} check(s): `,
      ...Object.keys(counts).sort((a, b) => mine.findIndex((c) => c.state === a) - mine.findIndex((c) => c.state === b))
        .map((state) => el("span", {}, badge(state), ` ${counts[state]} `))));
  }
  if (!checks.length) rows.append(el("tr", {}, el("td", { colSpan: 7, class: "empty" }, "No checks in this state.")));

  function applyFilters() {
    const state = $("#f-state").value, source = $("#f-source").value, owner = $("#f-owner").value;
    const tag = $("#f-tag").value, words = $("#search").value.toLowerCase().split(/\s+/).filter((w) => w);
    let shown = 0;
    for (const { check: c, row, card, haystack } of byId.values()) {
      const ok = (!state || c.state === state) && (!source || c.source === source) &&
        (!owner || c.owner === owner) && (!tag || c.tags.includes(tag)) && words.every((w) => haystack.includes(w));
      row.classList.toggle("hidden", !ok);
      card.classList.toggle("hidden", !ok);
      shown += ok ? 1 : 0;
    }
    $("#shown").textContent = `${shown} of ${checks.length} checks`;
  }
  for (const id of ["#f-state", "#f-source", "#f-owner", "#f-tag"]) $(id).addEventListener("change", applyFilters);
  $("#search").addEventListener("input", applyFilters);
  applyFilters();

  /* ---------------------------------------------------------------- check cards */
  function buildCard(c) {
    const card = el("article", { class: "card", id: `check-${c.id}`, "data-state": c.state },
      el("h3", {}, badge(c.state), el("span", {}, c.label)),
      el("div", { class: "muted" }, `${c.severity} · since ${when(c.since)}` + (c.method ? ` · ${c.method}` : "") +
        (c.owner ? ` · ${c.owner}` : "")),
      c.reason ? el("p", { class: "reason" }, c.reason) : null,
      Object.keys(c.notified).length ? el("div", { class: "muted" }, "last notice: " +
        Object.entries(c.notified).map(([channel, t]) => `${channel} ${when(t)}`).join(", ")) : null);
    if (c.chart) {
      const chart = el("div", { class: "chart", "data-id": c.id });
      card.append(chart, legend(c),
        el("div", { class: "muted" }, `${c.chart.t.length} of ${c.chart.points_total} points shown; ${c.chart.band}`));
      observer.observe(chart);
    } else if (c.marks.length) {
      card.append(el("ul", { class: "timeline" }, ...c.marks.slice(-5).reverse().map((m) =>
        el("li", {}, el("div", { class: "when" }, when(m.t)), m.text))));
    }
    return card;
  }

  function legend(c) {
    const item = (color, text) => el("span", {}, el("i", { style: `background:${color}` }), text);
    const kinds = new Set(c.spans.map((s) => s.kind));
    return el("div", { class: "legend" },
      item("var(--value)", "value"), item("var(--band)", "expected band"),
      c.chart.anomaly.some((a) => a) ? item("var(--bad)", "anomaly") : null,
      c.marks.length ? item("var(--warn)", "state change") : null,
      ...[...kinds].map((k) => item(`var(--${k})`, k)));
  }

  /* ---------------------------------------------------------------- charts (uPlot), drawn when visible */

  function shade(u, spans) {
    const { ctx, bbox } = u;
    ctx.save();
    for (const s of spans) {
      let x0 = u.valToPos(s.start, "x", true), x1 = u.valToPos(s.end, "x", true);
      x0 = Math.max(x0, bbox.left); x1 = Math.min(Math.max(x1, x0 + 2), bbox.left + bbox.width);
      if (x1 <= bbox.left || x0 >= bbox.left + bbox.width) continue;
      ctx.fillStyle = css(`--${s.kind}`);
      ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
    }
    ctx.restore();
  }

  function markLines(u, marks) {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    for (const m of marks) {
      const x = u.valToPos(m.t, "x", true);
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.strokeStyle = ["FIRING", "ERROR"].includes(m.to_state) ? css("--bad") :
        ["OK", "RESOLVED"].includes(m.to_state) ? css("--good") : css("--warn");
      ctx.beginPath(); ctx.moveTo(x, bbox.top); ctx.lineTo(x, bbox.top + bbox.height); ctx.stroke();
    }
    ctx.restore();
  }

  function explain(c, i) {
    const ch = c.chart, v = ch.value[i], lo = ch.lower[i], hi = ch.upper[i], unit = ch.unit;
    const lines = [when(ch.t[i]), `value ${number(v, unit)}`];
    if (ch.expected[i] !== null) lines.push(`expected ${number(ch.expected[i], unit)}`);
    if (hi !== null) lines.push(`range ${number(lo, unit)} – ${number(hi, unit)}`);
    let why = ch.notes[i];
    if (!why) {
      if (hi === null) why = ch.anomaly[i] ? "alerted" : "no band yet (learning) or no learned band";
      else if (v > hi) why = "above the expected range" + (ch.anomaly[i] ? "; alerted" : "");
      else if (v < lo) why = "below the expected range" + (ch.anomaly[i] ? "; alerted" : "");
      else why = ch.anomaly[i] ? "alerted" : "within the expected range";
    }
    lines.push(why);
    return lines;
  }

  // 24-hour UTC labels: hours within two days, dates beyond (a date where a short range crosses midnight)
  function timeLabels(splits, range) {
    return splits.map((t, n) => {
      const d = new Date(t * 1000), date = `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
      if (range > 2 * 86400) return date;
      const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
      return n === 0 || (d.getUTCHours() === 0 && d.getUTCMinutes() === 0) ? `${date}\n${hm}` : hm;
    });
  }

  function draw(box) {
    const c = byId.get(box.dataset.id).check, ch = c.chart;
    const tip = el("div", { class: "tooltip" });
    box.append(tip);
    const anomalies = ch.value.map((v, i) => (ch.anomaly[i] ? v : null));
    const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    const timeAxis = { ...axis, values: (u, splits) => timeLabels(splits, u.scales.x.max - u.scales.x.min) };
    const width = Math.max(box.clientWidth, 200);
    const opts = {
      width, height: width < 500 ? 180 : 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      legend: { show: false },
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      scales: { x: { time: true } },
      axes: [timeAxis, { ...axis, size: 64, values: (u, vals) => vals.map((v) => number(v, ch.unit)) }],
      series: [
        {},
        { label: "lower", stroke: "transparent", points: { show: false } },
        { label: "upper", stroke: "transparent", points: { show: false } },
        { label: "expected", stroke: css("--expected"), width: 1, dash: [4, 4], points: { show: false } },
        { label: "value", stroke: css("--value"), width: 1.5, points: { show: false } },
        { label: "anomaly", stroke: css("--bad"), width: 0, paths: () => null,
          points: { show: true, size: 9, fill: css("--bad"), stroke: css("--bad") } },
      ],
      bands: [{ series: [2, 1], fill: css("--band") }],
      hooks: {
        drawAxes: [(u) => shade(u, c.spans)],
        draw: [(u) => { markLines(u, c.marks); box.dataset.rendered = "1"; }],
        setCursor: [(u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
          tip.replaceChildren(...explain(c, i).map((line, n) => el(n === 0 ? "strong" : "div", {}, line)));
          tip.style.display = "block";
          const left = u.cursor.left + 60, room = box.clientWidth - tip.offsetWidth - 4;
          tip.style.left = `${Math.max(0, Math.min(left, room))}px`;
          tip.style.top = `${Math.max(0, u.cursor.top - 10)}px`;
        }],
      },
    };
    const plot = new uPlot(opts, [ch.t, ch.lower, ch.upper, ch.expected, ch.value, anomalies], box);
    charts.set(c.id, plot);
  }

  function redrawAll() {
    for (const [id, plot] of [...charts]) {  // a copy: draw() adds to the map
      const box = plot.root.parentElement;
      plot.destroy();
      box.querySelector(".tooltip").remove();
      charts.delete(id);
      draw(box);
    }
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(redrawAll, 150); });
  $("#theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("driftguard-theme", next); } catch (e) { /* file:// may refuse storage */ }
    redrawAll();
  });

  /* ---------------------------------------------------------------- schema changes, notices, deliveries */
  const timeline = (target, entries, empty) => {
    if (!entries.length) { target.append(el("p", { class: "empty" }, empty)); return; }
    target.append(el("ul", { class: "timeline" }, ...entries.map((e) => el("li", {},
      el("div", { class: "when" }, `${when(e.t)} · ${e.source}${e.table ? "." + e.table : ""} `, badge(e.state)),
      el("div", {}, e.text)))));
  };
  timeline($("#schema"), data.schema_changes, "No schema changes in this window.");
  timeline($("#notices"), data.notices, "No alert was raised or resolved in this window.");
  const deliveries = (target, list, empty) => {
    if (!list.length) { target.append(el("p", { class: "empty" }, empty)); return; }
    target.append(el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ...["when", "source", "channel", "message", "detail"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...list.map((d) => el("tr", {}, el("td", {}, when(d.t)), el("td", {}, d.source),
        el("td", {}, d.channel), el("td", {}, d.text), el("td", {}, d.detail)))))));
  };
  deliveries($("#pending"), data.pending, "Nothing waits in the outbox.");
  deliveries($("#parked"), data.parked, "No parked deliveries.");
  document.body.dataset.ready = "1";
})();
