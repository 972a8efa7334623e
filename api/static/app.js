// optarena dashboard: plain JavaScript, no build step, no network beyond this API.
"use strict";

const view = document.getElementById("view");
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const FINISHED = new Set(["succeeded", "failed", "cancelled", "diverged", "pruned"]);
let cleanup = () => {};

// What the API offers (kinds of job, optimizers, datasets, model presets), fetched once.
const catalog = {};
async function offered(what) {
  if (!catalog[what]) catalog[what] = await api("GET", `/${what}`);
  return catalog[what];
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    signInPage(data.detail);
  }
  if (!response.ok) {
    const error = new Error(data.message || (typeof data.detail === "string" ? data.detail : response.statusText));
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

const fmt = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

// ------------------------------------------------------------------ router

// ------------------------------------------------------------------ sign in

// The key goes to POST /session once; the server keeps it in an HttpOnly, SameSite=Strict
// cookie, which also authenticates the event stream and images (they cannot send headers).
function signInPage(message) {
  cleanup();
  cleanup = () => {};
  const input = el("input", { id: "api-key", type: "password", size: 60, placeholder: "oa_…", autocomplete: "off" });
  const error = el("p", { id: "signin-error", class: "error" });
  const form = el("form", {
    id: "signin",
    onsubmit: async (event) => {
      event.preventDefault();
      const response = await fetch("/session", {
        method: "POST",
        headers: { authorization: `Bearer ${input.value.trim()}` },
      });
      const data = await response.json().catch(() => ({}));
      if (response.ok) route();
      else error.textContent = data.detail || response.statusText;
    },
  }, el("label", { for: "api-key" }, "API key "), input, " ", el("button", { id: "signin-submit", type: "submit" }, "Sign in"));
  document.getElementById("who").textContent = "";
  view.replaceChildren(
    el("h2", {}, "Sign in"),
    el("p", {}, "Paste your API key. Make one with ", el("code", {}, "optarena keys create --owner NAME"), "."),
    form,
    error,
  );
  if (message && message.includes("not valid")) error.textContent = message;
}

async function signOut() {
  await fetch("/session", { method: "DELETE" });
  signInPage();
}

async function route() {
  const who = await fetch("/session");
  if (who.status === 401) {
    signInPage();
    return;
  }
  const me = await who.json();
  document.getElementById("who").replaceChildren(
    `${me.owner}${me.admin ? " (admin)" : ""} `,
    el("a", { href: "#/", id: "sign-out", onclick: (e) => { e.preventDefault(); signOut(); } }, "sign out"),
  );
  cleanup();
  cleanup = () => {};
  const hash = location.hash || "#/";
  const match = hash.match(/^#\/jobs\/([0-9a-f-]+)$/);
  view.replaceChildren();
  if (match) jobPage(match[1]);
  else if (hash === "#/new") newJobPage();
  else if (hash.startsWith("#/scores?")) scoresPage(new URLSearchParams(hash.slice("#/scores?".length)));
  else jobsPage();
}
window.addEventListener("hashchange", route);

// ------------------------------------------------------------------ jobs list

async function jobsPage() {
  const table = el("table", { id: "jobs" });
  // Ended training and tuned jobs can be scored together: each a workload (GET /scores).
  const chosen = new Set();
  const baseline = el("input", { id: "score-baseline", placeholder: "baseline arm, e.g. adam", size: 22 });
  const time = el("select", { id: "score-time" }, ["seconds", "steps", "epochs"].map((v) => el("option", { value: v }, v)));
  const scoreButton = el("button", { id: "score", onclick: () => {
    const query = new URLSearchParams([...chosen].map((id) => ["job_id", id]));
    if (baseline.value.trim()) query.append("baseline", baseline.value.trim());
    query.append("time", time.value);
    location.hash = `#/scores?${query}`;
  } }, "Score selected");
  view.append(el("h2", {}, "Jobs"),
    el("div", { class: "toolbar" }, "score the ticked jobs across workloads: ", baseline, " time: ", time, scoreButton),
    table);
  async function refresh() {
    const page = await api("GET", "/jobs?limit=50");
    table.replaceChildren(el("tr", {}, ["", "name", "kind", "status", "runs", "created"].map((h) => el("th", {}, h))));
    for (const job of page.items) {
      const runs = Object.entries(job.runs_by_status).map(([s, n]) => `${n} ${s}`).join(", ");
      const scorable = ["train", "tune"].includes(job.kind) && FINISHED.has(job.status);
      const tick = el("input", { type: "checkbox", class: "pick", "data-job": job.id, onchange: (e) => {
        if (e.target.checked) chosen.add(job.id); else chosen.delete(job.id);
      } });
      tick.checked = chosen.has(job.id);
      table.append(el("tr", {},
        el("td", {}, scorable ? tick : ""),
        el("td", {}, el("a", { href: `#/jobs/${job.id}` }, job.name)),
        el("td", {}, job.kind),
        el("td", { class: `status-${job.status}` }, job.status),
        el("td", {}, runs),
        el("td", {}, new Date(job.created_at).toLocaleString())));
    }
    if (!page.items.length) table.append(el("tr", {}, el("td", { colspan: 6 }, "No jobs yet: submit one.")));
  }
  await refresh();
  const timer = setInterval(refresh, 3000);
  cleanup = () => clearInterval(timer);
}

// ------------------------------------------------------------------ scores

// Jobs as workloads, arms as contestants: the table, each workload's times and the profiles.
async function scoresPage(query) {
  view.append(el("h2", {}, "Scores across workloads"));
  let answer;
  try {
    answer = await api("GET", `/scores?${query}`);
  } catch (error) {
    view.append(el("p", { class: "error", id: "scores-error" }, error.message));
    return;
  }
  const workloads = el("table", { id: "workloads" },
    el("tr", {}, ["workload", "dataset", "target", ...answer.arms.map((a) => a.label)].map((h) => el("th", {}, h))));
  for (const w of answer.workloads) {
    const times = new Map(w.arms.map((a) => [a.label, a]));
    workloads.append(el("tr", {},
      el("td", {}, el("a", { href: `#/jobs/${w.job_id}` }, w.name)), el("td", {}, w.dataset),
      el("td", { title: w.target_source }, `${w.metric} ${Number(w.target.toPrecision(4))}`),
      ...answer.arms.map((a) => {
        const t = times.get(a.label);
        if (!t) return el("td", {}, "–");
        return el("td", {}, t.time === null ? "never" : `${Number(t.time.toPrecision(4))} (x${t.ratio === null ? "∞" : t.ratio.toFixed(2)})`);
      })));
  }
  view.append(comparisonTable(answer.table),
    el("h4", {}, `${answer.time} to target per workload (ratio to the fastest)`), workloads,
    ...answer.warnings.map((w) => el("p", { class: "warning" }, w)),
    el("img", { id: "profiles", src: `/scores/plot.png?${query}`, style: "max-width:600px" }));
}

// ------------------------------------------------------------------ charts

// Charts are uPlot (vendored in static/vendor, MIT): drag to zoom, double-click to reset,
// click a legend entry to hide its series, a tooltip with every shown series at the cursor,
// and a log scale for losses. Each series is its own [x, y] list; uPlot.join aligns them on
// the union of their x values (gaps spanned), so runs of any length share a chart.

// Points sorted by x with one y per x (the last), and on a log scale only positive values.
function cleanPoints(points, logY) {
  const kept = new Map();
  for (const [x, y] of points) {
    if (Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)) kept.set(x, y);
  }
  return [...kept.entries()].sort((a, b) => a[0] - b[0]);
}

function tooltipPlugin(xLabel) {
  let tip;
  return {
    hooks: {
      init: (u) => {
        tip = el("div", { class: "u-tip" });
        tip.style.display = "none";
        u.over.append(tip);
      },
      setCursor: (u) => {
        const { left, top, idx } = u.cursor;
        if (idx === null || idx === undefined || left < 0) { tip.style.display = "none"; return; }
        const rows = [];
        u.series.forEach((s, i) => {
          const v = u.data[i][idx];
          if (i > 0 && s.show && v !== null && v !== undefined) rows.push([s, v]);
        });
        if (!rows.length) { tip.style.display = "none"; return; }
        rows.sort((a, b) => b[1] - a[1]);
        const more = rows.length > 10 ? [el("div", { class: "muted" }, `and ${rows.length - 10} more`)] : [];
        tip.replaceChildren(
          el("b", {}, `${xLabel} ${Number(Number(u.data[0][idx]).toPrecision(5))}`),
          ...rows.slice(0, 10).map(([s, v]) => el("div", { style: `color:${s._color}` }, `${s.label}: ${Number(v.toPrecision(4))}`)),
          ...more);
        tip.style.display = "block";
        const width = u.over.clientWidth;
        tip.style.left = `${left > width / 2 ? left - tip.offsetWidth - 12 : left + 12}px`;
        tip.style.top = `${Math.max(0, top - 10)}px`;
      },
    },
  };
}

// One chart: its box (data-metric, data-series, data-points for tests and people) holding a
// uPlot instance that is updated in place while the job streams, and rebuilt only when its
// series or axis change. A user's zoom is kept while new points arrive.
class Chart {
  constructor(title, { xLabel, logY, bands = [] }) {
    this.title = title;
    this.xLabel = xLabel;
    this.logY = logY;
    this.bands = bands;
    this.plot = null;
    this.shape = "";
    this.zoomed = false;
    this.body = el("div", { class: "chart-body" });
    this.box = el("div", { class: "chart", "data-metric": title, "data-series": 0, "data-points": 0 },
      el("h3", {}, title + (logY ? " (log scale)" : "")), this.body);
  }

  // series: [{label, color, points: [[x, y], ...], fill?, dash?}]
  update(series) {
    const cleaned = series.map((s) => ({ ...s, points: cleanPoints(s.points, this.logY) }));
    const shown = cleaned.filter((s) => s.points.length);
    const most = Math.max(0, ...shown.map((s) => s.points.length));  // one value per series
    this.box.dataset.series = shown.length;
    this.box.dataset.points = most;
    if (!shown.length) {
      this.destroy();
      this.body.replaceChildren(el("div", { class: "muted" }, "no values yet"));
      return;
    }
    const data = uPlot.join(shown.map((s) => [s.points.map((p) => p[0]), s.points.map((p) => p[1])]));
    const shape = shown.map((s) => s.label).join("\n");
    if (this.plot && shape === this.shape) {
      this.plot.setData(data, !this.zoomed);
      return;
    }
    this.destroy();
    this.shape = shape;
    this.body.replaceChildren();
    const index = new Map(shown.map((s, i) => [s.label, i + 1]));
    const chart = this;
    this.plot = new uPlot({
      width: this.width(),
      height: 260,
      scales: { x: { time: false }, y: { distr: this.logY ? 3 : 1 } },
      axes: [{ label: this.xLabel, size: 40 }, { size: 60 }],
      series: [
        { label: this.xLabel },
        ...shown.map((s) => ({
          label: s.label, stroke: s.color, _color: s.color, width: s.width ?? 1.6, dash: s.dash,
          fill: s.fill, spanGaps: true, points: { show: false },
        })),
      ],
      bands: this.bands
        .filter(([hi, lo]) => index.has(hi) && index.has(lo))
        .map(([hi, lo, fill]) => ({ series: [index.get(hi), index.get(lo)], fill })),
      cursor: { drag: { x: true, y: false } },
      legend: { live: false },
      plugins: [tooltipPlugin(this.xLabel)],
      hooks: {
        setSelect: [(u) => { if (u.select.width > 0) chart.zoomed = true; }],
        ready: [(u) => u.over.addEventListener("dblclick", () => { chart.zoomed = false; })],
      },
    }, data, this.body);
    this.box.uplot = this.plot;  // for the browser tests and the console
  }

  // The box's width (the grid's column), so the chart fills it; followed when it changes.
  width() {
    if (!this.resizing && window.ResizeObserver) {
      this.resizing = new ResizeObserver(() => {
        if (this.plot) this.plot.setSize({ width: this.width(), height: 260 });
      });
      this.resizing.observe(this.body);
    }
    return Math.max(320, Math.floor(this.body.clientWidth || 440));
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.shape = "";
  }
}

// A translucent fill of a series colour, for a band.
function faded(color, alpha = 0.18) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  return `rgba(${r},${g},${b},${alpha})`;
}

// A train comparison's arms over seeds: each arm's mean curve with its 95% band, as the
// comparison computes them (the band needs two seeds).
function bandChart(answer, colorOf) {
  const arms = (answer.ranking || []).filter((a) => (a.curve || []).length);
  if (!arms.some((a) => a.seeds.length > 1)) return null;
  const metric = answer.metric;
  const logY = metric.includes("loss");
  const series = [], bands = [];
  for (const arm of arms) {
    const color = colorOf(arm.label);
    const pts = (key) => arm.curve.filter((p) => p[key] !== null).map((p) => [p.epoch, p[key]]);
    series.push({ label: `${arm.label} mean`, color, points: pts("mean"), width: 2 });
    series.push({ label: `${arm.label} 95% high`, color: faded(color, 0.5), points: pts("ci_high"), width: 0.5 });
    series.push({ label: `${arm.label} 95% low`, color: faded(color, 0.5), points: pts("ci_low"), width: 0.5 });
    bands.push([`${arm.label} 95% high`, `${arm.label} 95% low`, faded(color)]);
  }
  const chart = new Chart(`${metric}: mean over seeds, 95% band`, { xLabel: "epoch", logY, bands });
  chart.box.id = "bands";
  chart.update(series);
  return chart.box;
}

// ------------------------------------------------------------------ job page

async function jobPage(jobId) {
  let job, kinds;
  try {
    [job, kinds] = await Promise.all([api("GET", `/jobs/${jobId}`), offered("kinds")]);
  } catch (error) {
    view.append(el("p", { class: "error" }, error.message));
    return;
  }
  const kind = kinds.find((k) => k.name === job.kind);
  const position = job.unit;  // the field that places a record in its run: epoch, step
  const records = new Map(job.runs.map((r) => [r.id, []]));
  const runs = new Map(job.runs.map((r) => [r.id, { ...r }]));
  const arms = [...new Set(job.runs.map((r) => r.label))];
  const color = (run) => COLORS[arms.indexOf(run.label) % COLORS.length];
  const statusEl = el("span", { id: "job-status", class: `status-${job.status}` }, job.status);
  const cancelButton = el("button", { class: "danger", id: "cancel", onclick: cancel }, "Cancel job");
  const axes = kind.x_axes.filter((a) => [position, "examples", "seconds"].includes(a));
  const axis = el("select", { id: "x-axis", onchange: draw }, axes.map((v) => el("option", { value: v }, v)));
  const charts = el("div", { class: "charts", id: "charts" });
  const comparison = el("div", { id: "comparison" });
  const runTable = el("table", { id: "runs" });
  view.append(
    el("h2", {}, job.name, " ", statusEl),
    el("div", { class: "toolbar" }, "x-axis: ", axis, cancelButton,
      el("a", { href: `/jobs/${jobId}/plot.png`, target: "_blank" }, "plot.png"),
      el("a", { href: `/jobs/${jobId}/export.csv` }, "export.csv")),
    ...(kind.picture ? [el("img", { src: `/jobs/${jobId}/plot.png`, id: "picture", style: "max-width:600px" })] : []),
    ...(kind.views || []).map((v) => el("img", { src: `/jobs/${jobId}/plot.png?view=${v}`, class: "view", "data-view": v, style: "max-width:600px" })),
    // A job with a target: the fraction of each arm's runs that reached it (Kaplan-Meier).
    ...(job.kind === "train" && job.spec.target ? [el("img", { src: `/jobs/${jobId}/plot.png?view=target&metric=${job.spec.target.metric}`, class: "view", "data-view": "target", style: "max-width:600px" })] : []),
    charts, el("h3", {}, "Comparison"), comparison, el("h3", {}, "Runs"), runTable);
  if (FINISHED.has(job.status)) cancelButton.disabled = true;

  let pending = false;
  const chartOf = new Map();  // metric -> Chart, kept across redraws
  function draw() {
    pending = false;
    const x = axis.value;
    const metrics = job.metrics || kind.metrics;
    for (const metric of metrics) {
      const logY = kind.lower_is_better.includes(metric) || metric.includes("loss");
      const current = chartOf.get(metric);
      if (!current || current.xLabel !== x) {
        if (current) current.destroy();
        chartOf.set(metric, new Chart(metric, { xLabel: x, logY }));
      }
    }
    if (charts.children.length !== metrics.length || [...chartOf.values()].some((c) => !c.box.isConnected)) {
      charts.replaceChildren(...metrics.map((m) => chartOf.get(m).box));
    }
    for (const metric of metrics) {
      const series = [...runs.values()].map((run) => {
        let elapsed = 0;
        const points = [];
        for (const r of records.get(run.id)) {
          if (r[position] >= 1) elapsed += r.epoch_seconds ?? r.seconds ?? 0;
          const xv = x === "examples" ? r.examples_seen : x === "seconds" ? elapsed : r[position];
          if (r[metric] !== null && r[metric] !== undefined) points.push([xv, r[metric]]);
        }
        const seed = run.seed === null ? "" : ` seed ${run.seed}`;
        return { label: `${run.label}${seed}`, color: color(run), points };
      });
      chartOf.get(metric).update(series);
    }
  }
  const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };

  function drawRuns() {
    const phased = [...runs.values()].some((r) => r.phase !== null && r.phase !== undefined);
    const heads = ["#", "run", ...(phased ? ["phase", "trial"] : []), "seed", "batch", "status", "reason"];
    runTable.replaceChildren(el("tr", {}, heads.map((h) => el("th", {}, h))));
    for (const run of runs.values()) {
      runTable.append(el("tr", {},
        el("td", {}, run.index), el("td", {}, run.label),
        ...(phased ? [el("td", {}, run.phase ?? "–"), el("td", {}, run.trial ?? "–")] : []),
        el("td", {}, run.seed ?? "–"),
        el("td", {}, run.batch_size ?? "–"),
        el("td", { class: `status-${run.status}` }, run.status), el("td", {}, run.error || "")));
    }
  }

  async function loadComparison() {
    try {
      const answer = await api("GET", `/jobs/${jobId}/comparison`);
      const colorOf = (label) => COLORS[Math.max(0, arms.indexOf(label)) % COLORS.length];
      comparison.replaceChildren(
        ...(answer.kind === "train" ? [bandChart(answer, colorOf)].filter((b) => b) : []),
        comparisonTable(answer.table), ...(answer.kind === "tune" ? tuning(answer) : []));
      for (const img of document.querySelectorAll("img.view")) {
        img.src = `/jobs/${jobId}/plot.png?view=${img.dataset.view}&t=${Date.now()}`;
      }
    } catch (error) {
      comparison.replaceChildren(el("p", { class: "error" }, error.message));
    }
  }

  async function cancel() {
    try {
      const answer = await api("POST", `/jobs/${jobId}/cancel`);
      statusEl.textContent = `${answer.status} (cancel requested)`;
    } catch (error) {
      statusEl.textContent = error.message;
    }
    cancelButton.disabled = true;
  }

  drawRuns();
  draw();
  loadComparison();
  const source = new EventSource(`/jobs/${jobId}/events`);
  // Runs a job adds while it runs (a tuned comparison's final seeds): read the job again.
  let refreshing = null;
  function learnRuns() {
    refreshing ??= api("GET", `/jobs/${jobId}`).then((fresh) => {
      for (const r of fresh.runs) {
        if (!runs.has(r.id)) { runs.set(r.id, { ...r }); records.set(r.id, []); }
        if (!arms.includes(r.label)) arms.push(r.label);
      }
      drawRuns();
    }).finally(() => { refreshing = null; });
    return refreshing;
  }
  source.addEventListener("record", async (e) => {
    const r = JSON.parse(e.data);
    if (!records.has(r.run_id)) await learnRuns();
    if (records.has(r.run_id)) records.get(r.run_id).push(r);
    schedule();
  });
  source.addEventListener("run", async (e) => {
    const r = JSON.parse(e.data);
    if (!runs.has(r.run_id)) await learnRuns();
    const run = runs.get(r.run_id);
    if (!run) return;
    run.status = r.status;
    run.error = r.error;
    drawRuns();
    if (FINISHED.has(r.status)) loadComparison();
  });
  source.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    statusEl.textContent = d.status;
    statusEl.className = `status-${d.status}`;
    cancelButton.disabled = true;
    source.close();
    loadComparison();
    const img = document.getElementById("picture");
    if (img) img.src = `/jobs/${jobId}/plot.png?t=${Date.now()}`;
  });
  cleanup = () => source.close();
}

function sortable(table, rows, columns) {
  let sortBy = null, ascending = true;
  function render() {
    const sorted = [...rows];
    if (sortBy !== null) {
      const key = columns[sortBy].key;
      sorted.sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (ascending ? 1 : -1);
      });
    }
    table.replaceChildren(el("tr", {}, columns.map((c, i) => el("th", {
      class: i === sortBy ? (ascending ? "sorted-asc" : "sorted-desc") : "",
      onclick: () => { ascending = sortBy === i ? !ascending : true; sortBy = i; render(); },
    }, c.title))));
    for (const row of sorted) table.append(el("tr", {}, columns.map((c) => el("td", {}, c.show(row)))));
  }
  render();
  return table;
}

// A tuned comparison's search: each optimizer's trials, the chosen one marked; warnings.
function tuning(answer) {
  const parts = [];
  for (const w of answer.warnings) parts.push(el("p", { class: "warning" }, `⚠ ${w}`));
  for (const o of answer.optimizers) {
    const table = el("table", { class: "trials" });
    table.append(el("tr", {}, ["trial", "configuration", answer.metric, "status", "pruned at"].map((h) => el("th", {}, h))));
    for (const t of o.trials) {
      const chosen = o.chosen && o.chosen.trial === t.trial;
      const config = Object.entries(t.values).map(([k, v]) => `${k}=${typeof v === "number" ? v.toPrecision(3) : v}`).join(", ");
      table.append(el("tr", { class: chosen ? "chosen" : "" },
        el("td", {}, chosen ? `${t.trial} ★` : t.trial), el("td", {}, config || "(defaults)"),
        el("td", {}, t.value === null ? "–" : t.value.toFixed(4)),
        el("td", { class: `status-${t.status}` }, t.status), el("td", {}, t.pruned_at ?? "")));
    }
    parts.push(el("h4", {}, `${o.label}: ${o.trials.length} trials`), table);
  }
  return parts;
}

// Any kind's comparison, from the table it carries for people: sortable by any column.
function comparisonTable(table) {
  const node = el("table", { id: "comparison-table" });
  sortable(node, table.rows, table.columns.map((c) => ({
    title: c.title,
    key: (row) => row[c.key],
    show: (row) => (row[c.key] === null || row[c.key] === undefined ? "–" : row[c.key]),
  })));
  return el("div", {}, el("h4", {}, table.title), node, el("p", { class: "note" }, table.note));
}

// ------------------------------------------------------------------ new job

// The form is built from what the API offers: its optimizers, datasets (yours included) and
// your uploaded models.
async function newJobPage() {
  let optimizers, datasets, models;
  try {
    [optimizers, datasets, models] = await Promise.all([
      offered("optimizers"), api("GET", "/datasets"), api("GET", "/models/uploaded")]);
  } catch (error) {
    view.append(el("p", { class: "error" }, error.message));
    return;
  }
  const hints = Object.fromEntries(optimizers.map((o) => [o.name, o.arguments
    .filter((a) => a.name !== "learning_rate").map((a) => `${a.name}=${a.default}`).join(", ")]));
  const errorSpan = (field) => el("span", { class: "error", "data-error-for": field });
  const input = (id, value, extra = {}) => el("input", { id, name: id, value, ...extra });
  const rows = el("div", { id: "optimizer-rows" });
  function addRow(name = "adam", lr = "", args = "") {
    const i = rows.children.length;
    const argsInput = el("input", { class: "opt-args", value: args, size: 40, placeholder: hints[name] });
    const select = el("select", { class: "opt-name", onchange: () => { argsInput.placeholder = hints[select.value]; } },
      optimizers.map((o) => {
        const option = el("option", { value: o.name }, o.name);
        if (o.name === name) option.selected = true;
        return option;
      }));
    rows.append(el("div", { class: "optimizer-row", "data-index": i },
      select, el("input", { class: "opt-lr", placeholder: "learning rate (default)", value: lr }),
      argsInput, el("span", { class: "error", "data-error-for": `optimizers.${i}` })));
  }
  addRow("sgd"); addRow("adam"); addRow("rmsprop");
  const general = el("p", { class: "error", id: "form-error" });
  const form = el("form", { class: "job", id: "job-form", onsubmit: submit },
    el("label", { for: "name" }, "Name"), input("name", ""), errorSpan("name"),
    el("label", { for: "dataset" }, "Dataset"),
    el("select", { id: "dataset" }, datasets.map((d) => el("option",
      { value: d.id ? `id:${d.id}` : d.name, title: d.note }, d.id ? `${d.name} (uploaded)` : d.name))),
    errorSpan("dataset"),
    el("label", { for: "model" }, "Model: the MLP preset, or one you uploaded"),
    el("select", { id: "model" }, el("option", { value: "mlp" }, "MLP preset (hidden units and dropout below)"),
      models.map((m) => el("option", { value: m.id },
        `${m.name} (uploaded: inputs ${JSON.stringify(m.input_shape)}, ${m.outputs} outputs)`))),
    el("select", { id: "weights", title: "An uploaded model's starting weights" },
      el("option", { value: "file" }, "start from the file's weights"),
      el("option", { value: "reinitialize" }, "reinitialize from each seed")),
    el("label", { for: "hidden" }, "MLP hidden units (comma-separated) and dropout"),
    input("hidden", "128"), input("dropout", "0.2"), errorSpan("model"),
    el("label", {}, "Optimizers: a learning rate, and other arguments as JSON (defaults shown)"), rows,
    el("button", { type: "button", onclick: () => addRow() }, "Add optimizer"), errorSpan("optimizers"),
    el("label", { for: "batch_size" }, "Batch sizes"), input("batch_size", "32"), errorSpan("batch_size"),
    el("label", { for: "epochs" }, "Epoch budgets"), input("epochs", "5"), errorSpan("epochs"),
    el("label", { for: "seeds" }, "Seeds"), input("seeds", "0"), errorSpan("seeds"),
    el("p", {}, el("button", { type: "submit", id: "submit" }, "Submit job")), general);
  view.append(el("h2", {}, "New comparison job"), form);

  const list = (text) => text.split(",").map((v) => v.trim()).filter((v) => v).map((v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v));

  async function submit(event) {
    event.preventDefault();
    for (const span of form.querySelectorAll(".error")) span.textContent = "";
    const chosen = [];
    for (const row of rows.children) {
      const spec = { name: row.querySelector(".opt-name").value };
      const lr = row.querySelector(".opt-lr").value.trim();
      if (lr) spec.learning_rate = Number.isNaN(Number(lr)) ? lr : Number(lr);
      const args = row.querySelector(".opt-args").value.trim();
      if (args) {
        try { Object.assign(spec, JSON.parse(args)); } catch (e) {
          row.querySelector(".error").textContent = `not JSON: ${e.message}`;
          return;
        }
      }
      chosen.push(spec);
    }
    const dataset = document.getElementById("dataset").value;
    const model = document.getElementById("model").value;
    const body = {
      dataset: dataset.startsWith("id:") ? { id: dataset.slice(3) } : { name: dataset },
      model: model === "mlp"
        ? { preset: "mlp", hidden_units: list(document.getElementById("hidden").value),
          dropout: Number(document.getElementById("dropout").value) }
        : { id: model, weights: document.getElementById("weights").value },
      optimizers: chosen,
      batch_size: list(document.getElementById("batch_size").value),
      epochs: list(document.getElementById("epochs").value),
      seeds: list(document.getElementById("seeds").value),
    };
    const name = document.getElementById("name").value.trim();
    if (name) body.name = name;
    try {
      const job = await api("POST", "/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      const detail = Array.isArray(error.data?.detail) ? error.data.detail : [];
      let placed = false;
      for (const d of detail) {
        const loc = d.loc.slice(1);
        const candidates = [loc.slice(0, 2).join("."), String(loc[0])];
        const span = candidates.map((c) => form.querySelector(`[data-error-for="${c}"]`)).find((s) => s);
        if (span) { span.textContent = `${span.textContent ? span.textContent + "; " : ""}${d.msg}`; placed = true; }
      }
      if (!placed) general.textContent = error.message;
    }
  }
}

route();
