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

function lineChart(title, series, xLabel, logY) {
  const W = 420, H = 260, L = 55, R = 10, T = 10, B = 35;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const points = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
  const box = el("div", { class: "chart", "data-metric": title }, el("h3", {}, title), svg);
  if (!points.length) {
    box.append(el("div", { class: "muted" }, "no values yet"));
    return box;
  }
  const tf = (y) => (logY ? Math.log10(y) : y);
  // Loops, not Math.min(...points): spreading 100,000 values overflows the call stack.
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of points) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x);
    y0 = Math.min(y0, tf(y)); y1 = Math.max(y1, tf(y));
  }
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((tf(y) - y0) / (y1 - y0)) * (H - T - B);
  const add = (name, attrs, text) => {
    const node = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    const yv = y0 + ((y1 - y0) * i) / 4;
    add("text", { x: sx(xv), y: H - B + 14, "font-size": 10, "text-anchor": "middle" }, Number(xv.toPrecision(3)));
    const label = logY ? Number((10 ** yv).toPrecision(2)) : Number(yv.toPrecision(3));
    const y = H - B - ((yv - y0) / (y1 - y0)) * (H - T - B);
    add("text", { x: L - 4, y: y + 3, "font-size": 10, "text-anchor": "end" }, label);
    add("line", { x1: L, y1: y, x2: W - R, y2: y, stroke: "#eee" });
  }
  add("text", { x: (L + W - R) / 2, y: H - 4, "font-size": 11, "text-anchor": "middle" }, xLabel);
  for (const s of series) {
    const good = s.points.filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
    if (!good.length) continue;
    add("polyline", {
      points: good.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 1.6, "data-run": s.label, "data-points": good.length,
    });
  }
  const legend = el("div", {}, series.filter((s) => s.first).map((s) =>
    el("span", { style: `color:${s.color}; margin-right:1em` }, `— ${s.arm}`)));
  box.append(legend);
  return box;
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
  function draw() {
    pending = false;
    const x = axis.value;
    const seen = new Set();
    charts.replaceChildren(...(job.metrics || kind.metrics).map((metric) => {
      const series = [...runs.values()].map((run) => {
        let elapsed = 0;
        const points = [];
        for (const r of records.get(run.id)) {
          if (r[position] >= 1) elapsed += r.epoch_seconds ?? r.seconds ?? 0;
          const xv = x === "examples" ? r.examples_seen : x === "seconds" ? elapsed : r[position];
          if (r[metric] !== null && r[metric] !== undefined) points.push([xv, r[metric]]);
        }
        const key = `${metric}:${run.label}`;
        const first = !seen.has(key);
        seen.add(key);
        const seed = run.seed === null ? "" : ` seed ${run.seed}`;
        return { label: `${run.label}${seed}`, arm: run.label, color: color(run), points, first };
      });
      const logY = kind.lower_is_better.includes(metric) || metric.includes("loss");
      return lineChart(metric, series, x, logY);
    }));
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
      comparison.replaceChildren(comparisonTable(answer.table), ...(answer.kind === "tune" ? tuning(answer) : []));
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
