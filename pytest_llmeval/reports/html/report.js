// The HTML report's page script (pytest-llmeval), inlined by render.py; `node --check` runs
// on it in the tests. Everything in the data island is untrusted (model outputs, prompts):
// it reaches the page only through textContent, setAttribute and createElement, never as
// markup, so the strict Content-Security-Policy has nothing to stop.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("llmeval-data").textContent);
  const S = D.strings, C = D.cells, R = D.rows, MODELS = D.models, EVALS = D.evals;
  const OUT = ["passed", "failed", "error"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const NROWS = R.eval.length, NCELLS = C.row.length;

  // -- helpers: data only ever reaches the page as text nodes or attribute values --------
  function str(i) { return (i === null || i === undefined || i < 0) ? null : S[i]; }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function put(parent) { for (let i = 1; i < arguments.length; i++) { const c = arguments[i];
    if (c !== null && c !== undefined) parent.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } return parent; }
  function child(parent, c) { parent.appendChild(c); return c; }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function pct(x, d) { return (x === null || x === undefined) ? "–" : (x * 100).toFixed(d === undefined ? 1 : d) + "%"; }
  function num(x) { return (x === null || x === undefined) ? "–" : Number(x).toLocaleString("en-US"); }
  function usd(x) { return (x === null || x === undefined) ? "–" : "$" + (x < 0.01 && x > 0 ? x.toPrecision(2) : x.toFixed(4)); }
  function secs(x) { return (x === null || x === undefined) ? "–" : (x < 1 ? (x * 1000).toFixed(0) + " ms" : x.toFixed(2) + " s"); }
  function shortEval(name) { const i = name.lastIndexOf("::"); return i >= 0 ? name.slice(i + 2) : name; }
  function badge(kind, text) { return el("span", "badge " + kind, text); }
  // What the baseline had for a flipped cell: cell index -> [output, error, output_chars].
  const BASE_VIEW = new Map();
  if (D.baseline && Array.isArray(D.baseline.flips)) for (const f of D.baseline.flips) BASE_VIEW.set(f[0], f.slice(1));
  function flipOf(ci) { const b = C.base[ci], o = C.outcome[ci];
    if (b < 0 || (b === 0) === (o === 0)) return 0; return b === 0 ? 2 : 1; }  // 2: to fail, 1: to pass

  // -- per-row index --------------------------------------------------------------------
  const rowCells = new Array(NROWS);
  for (let r = 0; r < NROWS; r++) rowCells[r] = [];
  for (let ci = 0; ci < NCELLS; ci++) rowCells[C.row[ci]].push(ci);
  for (let r = 0; r < NROWS; r++) rowCells[r].sort((a, b) => C.model[a] - C.model[b] || C.sample[a] - C.sample[b]);
  let haystacks = null;  // built on the first search only
  function haystack(r) {
    if (haystacks === null) haystacks = new Array(NROWS);
    let h = haystacks[r];
    if (h === undefined) {
      const parts = [EVALS[R.eval[r]].name, str(R.label[r]) || ""];
      for (const ci of rowCells[r]) { const d = C.detail[ci];
        parts.push(str(C.nodeid[ci]) || "", str(d[1]) || "", str(d[2]) || ""); }
      h = haystacks[r] = parts.join("\n").toLowerCase();
    }
    return h;
  }

  // -- header ---------------------------------------------------------------------------
  function renderHeader() {
    const m = D.meta, head = document.getElementById("summary");
    const h1 = el("h1", null, "LLM eval report");
    if (m.passed === true) put(h1, badge("pass", "run passed"));
    else if (m.passed === false) put(h1, badge("fail", "run failed"));
    put(head, h1);
    let total = 0, passed = 0, cost = 0, tin = 0, tout = 0;
    for (let ci = 0; ci < NCELLS; ci++) { total++; if (C.outcome[ci] === 0) passed++; }
    for (const ev of EVALS) for (const s of ev.stats) if (s) { cost += s.cost_usd || 0; tin += s.input_tokens; tout += s.output_tokens; }
    const bits = [];
    if (m.run_id) bits.push("run " + m.run_id);
    if (m.created_at) bits.push(m.created_at);
    bits.push(EVALS.length + " eval" + (EVALS.length === 1 ? "" : "s") + ", " + MODELS.length + " model" + (MODELS.length === 1 ? "" : "s"));
    bits.push(num(total) + " cases, " + num(passed) + " passed (" + pct(total ? passed / total : null) + ")");
    bits.push(num(tin) + " input / " + num(tout) + " output tokens, " + usd(cost));
    put(head, el("div", "sub", bits.join(" · ")));
    if (m.pytest_args && m.pytest_args.length) put(head, el("div", "sub", "pytest " + m.pytest_args.join(" ")));
    if (m.reasons && m.reasons.length) {
      const ul = el("ul", "sub");
      for (const reason of m.reasons) put(ul, el("li", null, reason));
      put(head, ul);
    }
  }

  // -- charts ---------------------------------------------------------------------------
  function chart(ev) {
    const idx = [];
    ev.stats.forEach((s, i) => { if (s) idx.push(i); });
    const left = 190, plotW = 260, right = 120, top = 22, rowH = 28;
    const W = left + plotW + right, H = top + idx.length * rowH + 20;
    const root = svg("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    root.setAttribute("data-eval", ev.name);
    put(root, svg("title", {}, "Pass rate per model with 95% interval: " + ev.name));
    const x = (v) => left + Math.max(0, Math.min(1, v)) * plotW;
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      put(root, svg("line", { "class": "axis", x1: x(t), x2: x(t), y1: top - 4, y2: H - 16 }));
      put(root, svg("text", { "class": "tick", x: x(t), y: H - 4, "text-anchor": "middle" }, (t * 100) + "%"));
    }
    idx.forEach((mi, k) => {
      const s = ev.stats[mi], y = top + k * rowH, mid = y + 10;
      let name = MODELS[mi]; if (name.length > 30) name = "…" + name.slice(-29);
      const label = svg("text", { x: left - 8, y: mid + 4, "text-anchor": "end" }, name);
      put(label, svg("title", {}, MODELS[mi]));
      put(root, label);
      put(root, svg("rect", { "class": "track", x: x(0), y: y + 2, width: plotW, height: 16, rx: 2 }));
      const bar = svg("rect", { "class": "bar " + s.verdict, x: x(0), y: y + 2, width: Math.max(0, x(s.rate) - x(0)), height: 16, rx: 2 });
      bar.setAttribute("data-model", MODELS[mi]);
      put(bar, svg("title", {}, MODELS[mi] + ": " + pct(s.rate) + " (" + s.passed + "/" + s.cases + "), 95% interval " +
        pct(s.lo, 0) + "–" + pct(s.hi, 0) + ", verdict " + s.verdict));
      put(root, bar);
      if (s.lo !== null && s.hi !== null) {
        put(root, svg("line", { "class": "whisker", x1: x(s.lo), x2: x(s.hi), y1: mid, y2: mid }));
        put(root, svg("line", { "class": "whisker", x1: x(s.lo), x2: x(s.lo), y1: mid - 5, y2: mid + 5 }));
        put(root, svg("line", { "class": "whisker", x1: x(s.hi), x2: x(s.hi), y1: mid - 5, y2: mid + 5 }));
      }
      if (s.base_rate !== null && s.base_rate !== undefined) {
        const bx = x(s.base_rate);
        const mark = svg("path", { "class": "base-mark", d: "M" + bx + " " + (mid - 6) + " l5 6 l-5 6 l-5 -6 z" });
        put(mark, svg("title", {}, "baseline " + pct(s.base_rate)));
        put(root, mark);
      }
      const txt = pct(s.rate) + " [" + (s.lo === null ? "–" : (s.lo * 100).toFixed(0)) + "–" + pct(s.hi, 0) + "]";
      put(root, svg("text", { x: left + plotW + 8, y: mid + 4 }, txt));
    });
    if (ev.threshold !== null && ev.threshold !== undefined) {
      const tx = x(ev.threshold);
      put(root, svg("line", { "class": "threshold", x1: tx, x2: tx, y1: top - 6, y2: H - 16 }));
      put(root, svg("text", { x: tx, y: top - 10, "text-anchor": ev.threshold > 0.8 ? "end" : "middle" }, "threshold " + pct(ev.threshold, 0)));
    }
    return root;
  }

  function statsTable(ev) {
    const t = el("table", "stats");
    const hr = el("tr");
    const cols = ["model", "pass / fail / err", "rate", "tokens in / out", "cost", "latency p50 / p95", "cached"];
    const hasK = ev.stats.some((s) => s && s.pass_at_k && s.pass_at_k.length > 1);
    if (hasK) cols.push("pass@k");
    cols.forEach((c, i) => put(hr, el("th", i ? "num" : null, c)));
    put(t, put(el("thead"), hr));
    const tb = child(t, el("tbody"));
    ev.stats.forEach((s, mi) => {
      if (!s) return;
      const tr = child(tb, el("tr"));
      const verdict = badge(s.verdict, s.verdict);
      if (s.reason) verdict.setAttribute("title", s.reason);
      const name = put(el("td"), verdict, " ", MODELS[mi]);
      put(tr, name, el("td", "num", num(s.passed) + " / " + num(s.failed) + " / " + num(s.errors)), el("td", "num", pct(s.rate)),
        el("td", "num", num(s.input_tokens) + " / " + num(s.output_tokens)), el("td", "num", usd(s.cost_usd)),
        el("td", "num", secs(s.latency_p50_s) + " / " + secs(s.latency_p95_s)), el("td", "num", num(s.cache_hits) + "/" + num(s.calls)));
      if (hasK) put(tr, el("td", "num", (s.pass_at_k || []).map((kv) => "@" + kv[0] + " " + pct(kv[1], 0)).join(", ")));
    });
    return t;
  }

  function renderEvals() {
    const box = document.getElementById("evals");
    for (const ev of EVALS) {
      const card = child(box, el("section", "card eval"));
      put(card, el("h3", null, ev.name));
      put(card, el("div", "sub", "threshold " + pct(ev.threshold, 0)));
      put(card, chart(ev), put(el("div", "scroll"), statsTable(ev)));
    }
  }

  // -- baseline -------------------------------------------------------------------------
  function renderBaseline() {
    const B = D.baseline, box = document.getElementById("baseline");
    if (!B) { box.hidden = true; return; }
    put(box, el("h2", null, "Against the baseline"));
    const src = [B.path, B.run_id ? "run " + B.run_id : "", B.created_at, B.alpha !== null ? "alpha " + B.alpha : ""].filter(Boolean);
    if (src.length) put(box, el("div", "sub", src.join(" · ")));
    const flips = new Map();
    for (let ci = 0; ci < NCELLS; ci++) { const f = flipOf(ci); if (f) { const k = R.eval[C.row[ci]] + "/" + C.model[ci];
      const v = flips.get(k) || [0, 0]; v[f === 2 ? 0 : 1]++; flips.set(k, v); } }
    const t = el("table", "stats deltas");
    const hr = el("tr");
    for (const c of ["eval", "model", "baseline", "now", "delta", "p-value", "flipped to fail", "flipped to pass", ""]) put(hr, el("th", c === "eval" || c === "model" ? null : "num", c));
    put(t, put(el("thead"), hr));
    const tb = child(t, el("tbody"));
    EVALS.forEach((ev, ei) => ev.stats.forEach((s, mi) => {
      if (!s) return;
      const f = flips.get(ei + "/" + mi) || [0, 0];
      const d = (s.base_rate === null || s.base_rate === undefined) ? null : s.rate - s.base_rate;
      const dcell = el("td", "num delta" + (d === null ? "" : d < 0 ? " down" : d > 0 ? " up" : ""),
        d === null ? "–" : (d > 0 ? "+" : "") + (d * 100).toFixed(1) + " pp");
      put(tb, put(el("tr"), el("td", null, shortEval(ev.name)), el("td", null, MODELS[mi]), el("td", "num", pct(s.base_rate)),
        el("td", "num", pct(s.rate)), dcell, el("td", "num", s.p_value === null ? "–" : s.p_value.toPrecision(2)),
        el("td", "num", num(f[0])), el("td", "num", num(f[1])),
        put(el("td"), s.regressed ? badge("fail", "regressed") : null)));
    }));
    put(box, put(el("div", "scroll"), t));
    const list = [];
    for (let ci = 0; ci < NCELLS; ci++) if (flipOf(ci)) list.push(ci);
    list.sort((a, b) => flipOf(b) - flipOf(a) || C.row[a] - C.row[b]);
    put(box, el("h3", null, "Flipped cases (" + list.length + ")"));
    if (!list.length) { put(box, el("div", "empty", "No case changed outcome.")); return; }
    const ul = child(box, el("ul", "flips"));
    for (const ci of list.slice(0, 200)) {
      const f = flipOf(ci);
      const b = el("button", "linkish flip-link");
      b.setAttribute("data-cell", ci);
      b.textContent = (f === 2 ? "▼ " : "▲ ") + shortEval(EVALS[R.eval[C.row[ci]]].name) + " · " + (str(R.label[C.row[ci]]) || "(no case id)") +
        " — " + MODELS[C.model[ci]] + ": " + OUT[C.base[ci]] + " → " + OUT[C.outcome[ci]];
      b.addEventListener("click", () => showDetail(ci));
      const li = put(el("li"), b, compareOutputs(ci));
      li.setAttribute("data-cell", ci);
      put(ul, li);
    }
    if (list.length > 200) put(box, el("div", "sub", "…and " + (list.length - 200) + " more: use “flipped only” below."));
  }

  // The baseline's answer beside this run's, for a flipped cell: what changed, at a glance.
  function compareSide(cls, title, output, error, chars, missing) {
    const side = el("div", "side " + cls);
    put(side, el("div", "msg-role", title));
    if (missing) { put(side, el("div", "empty", missing)); return side; }
    if (error !== null) put(side, el("div", "sub", "error"), el("pre", "err", error));
    put(side, output === null ? el("div", "empty", "No output recorded.") : el("pre", "out", output));
    if (chars && output !== null && chars > output.length) put(side, el("div", "sub", "Shortened: the full output has " + num(chars) + " characters."));
    return side;
  }
  function compareOutputs(ci) {
    const v = BASE_VIEW.get(ci), d = C.detail[ci];
    const box = el("div", "compare");
    box.setAttribute("data-cell", ci);
    put(box, v === undefined
      ? compareSide("base", "baseline: " + OUT[C.base[ci]], null, null, null, "The baseline's output is not in the results file.")
      : compareSide("base", "baseline: " + OUT[C.base[ci]], str(v[0]), str(v[1]), v[2], null));
    put(box, compareSide("now", "this run: " + OUT[C.outcome[ci]], str(d[1]), str(d[2]), d[7], null));
    return box;
  }

  // -- matrix ---------------------------------------------------------------------------
  const state = { failures: false, flipped: false, model: -1, evalIdx: -1, q: "", page: 0, size: 100 };
  let visible = [];
  let selected = -1;

  function rowVisibleCells(r) {
    return state.model < 0 ? rowCells[r] : rowCells[r].filter((ci) => C.model[ci] === state.model);
  }
  function applyFilters() {
    const q = state.q.trim().toLowerCase();
    const out = [];
    for (let r = 0; r < NROWS; r++) {
      if (state.evalIdx >= 0 && R.eval[r] !== state.evalIdx) continue;
      const cells = rowVisibleCells(r);
      if (!cells.length) continue;
      if (state.failures && !cells.some((ci) => C.outcome[ci] !== 0)) continue;
      if (state.flipped && !cells.some((ci) => flipOf(ci) !== 0)) continue;
      if (q && haystack(r).indexOf(q) < 0) continue;
      out.push(r);
    }
    visible = out;
    state.page = 0;
    renderPage();
  }

  function cellButton(ci) {
    const o = C.outcome[ci], f = flipOf(ci);
    const b = el("button", "cell o" + o + (f ? " flip" : "") + (ci === selected ? " sel" : ""), f === 2 ? "▼" : f === 1 ? "▲" : "");
    let tip = OUT[o] + " · score " + (C.score[ci] === null ? "–" : C.score[ci]);
    if (C.sample[ci] || rowCells[C.row[ci]].some((x) => C.sample[x] > 0)) tip += " · sample " + C.sample[ci];
    if (C.base[ci] >= 0) tip += " · baseline " + OUT[C.base[ci]];
    tip += "\n" + MODELS[C.model[ci]];
    b.setAttribute("title", tip);
    b.setAttribute("aria-label", tip);
    b.setAttribute("data-cell", ci);
    b.setAttribute("data-outcome", OUT[o]);
    return b;
  }

  function renderPage() {
    const cols = state.model < 0 ? MODELS.map((_, i) => i) : [state.model];
    const table = document.getElementById("matrix");
    const thead = el("thead"), hr = child(thead, el("tr"));
    put(hr, el("th", null, "eval"), el("th", null, "case"));
    for (const mi of cols) put(hr, el("th", null, MODELS[mi]));
    const tbody = el("tbody");
    const pages = Math.max(1, Math.ceil(visible.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.size, end = Math.min(visible.length, start + state.size);
    for (let i = start; i < end; i++) {
      const r = visible[i], tr = child(tbody, el("tr"));
      tr.setAttribute("data-row", r);
      put(tr, el("td", "evalname", shortEval(EVALS[R.eval[r]].name)), el("td", "case", str(R.label[r]) || "(no case id)"));
      const cells = rowCells[r];
      for (const mi of cols) {
        const td = child(tr, el("td", "m"));
        let any = false;
        for (const ci of cells) if (C.model[ci] === mi) { put(td, cellButton(ci)); any = true; }
        if (!any) put(td, el("span", "nocell", "–"));
      }
    }
    table.replaceChildren(thead, tbody);
    const total = NROWS;
    document.getElementById("row-count").textContent = visible.length === 0 ? "No case matches these filters." :
      "Cases " + num(start + 1) + "–" + num(end) + " of " + num(visible.length) + (visible.length !== total ? " (filtered from " + num(total) + ")" : "");
    document.getElementById("page-info").textContent = "page " + (state.page + 1) + " / " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  function renderControls() {
    const msel = document.getElementById("filter-model");
    MODELS.forEach((m, i) => { const o = el("option", null, m); o.value = String(i); put(msel, o); });
    const esel = document.getElementById("filter-eval");
    EVALS.forEach((ev, i) => { const o = el("option", null, shortEval(ev.name)); o.value = String(i); o.title = ev.name; put(esel, o); });
    if (!D.baseline) document.getElementById("flipped-wrap").hidden = true;
    document.getElementById("filter-failures").addEventListener("change", (e) => { state.failures = e.target.checked; applyFilters(); });
    document.getElementById("filter-flipped").addEventListener("change", (e) => { state.flipped = e.target.checked; applyFilters(); });
    msel.addEventListener("change", (e) => { state.model = Number(e.target.value); applyFilters(); });
    esel.addEventListener("change", (e) => { state.evalIdx = Number(e.target.value); applyFilters(); });
    let timer = 0;
    document.getElementById("filter-search").addEventListener("input", (e) => {
      clearTimeout(timer); const v = e.target.value;
      timer = setTimeout(() => { state.q = v; applyFilters(); }, 120);
    });
    document.getElementById("page-size").addEventListener("change", (e) => { state.size = Number(e.target.value); state.page = 0; renderPage(); });
    document.getElementById("prev").addEventListener("click", () => { state.page--; renderPage(); });
    document.getElementById("next").addEventListener("click", () => { state.page++; renderPage(); });
    document.getElementById("matrix").addEventListener("click", (e) => {
      const b = e.target.closest("button.cell"); if (b) showDetail(Number(b.getAttribute("data-cell")));
    });
    document.getElementById("close-detail").addEventListener("click", hideDetail);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideDetail(); });
  }

  // -- one case -------------------------------------------------------------------------
  function section(parent, title) { put(parent, el("h3", null, title)); }
  function textBlock(parent, text, emptyText) { put(parent, text === null ? el("div", "empty", emptyText) : el("pre", null, text)); }
  function kv(pairs) {
    const dl = el("dl", "kv");
    for (const [k, v] of pairs) if (v !== null && v !== undefined && v !== "") put(dl, el("dt", null, k), typeof v === "object" ? put(el("dd"), v) : el("dd", null, v));
    return dl;
  }
  function renderPrompt(parent, idx) {
    const raw = str(idx);
    if (raw === null) { put(parent, el("div", "empty", "No prompt recorded.")); return; }
    let msgs; try { msgs = JSON.parse(raw); } catch (err) { msgs = raw; }
    if (!Array.isArray(msgs)) { textBlock(parent, typeof msgs === "string" ? msgs : JSON.stringify(msgs, null, 2)); return; }
    for (const m of msgs) {
      const role = m && typeof m === "object" && m.role !== undefined ? String(m.role) : "message";
      let content = m && typeof m === "object" && "content" in m ? m.content : m;
      if (Array.isArray(content) && content.every((p) => p && p.type === "text" && typeof p.text === "string")) content = content.map((p) => p.text).join("\n");
      put(parent, el("div", "msg-role", role));
      textBlock(parent, typeof content === "string" ? content : JSON.stringify(content, null, 2));
    }
  }

  function showDetail(ci) {
    selected = ci;
    const d = C.detail[ci], r = C.row[ci], o = C.outcome[ci], f = flipOf(ci);
    const panel = document.getElementById("detail"), body = document.getElementById("detail-body");
    body.replaceChildren();
    const title = put(el("h2"), badge(OUT[o], OUT[o]), " ", str(R.label[r]) || shortEval(EVALS[R.eval[r]].name));
    put(body, title);
    const tags = d[6].map(str).join(", ");
    put(body, kv([["model", MODELS[C.model[ci]]], ["eval", EVALS[R.eval[r]].name], ["test id", str(C.nodeid[ci])],
      ["sample", String(C.sample[ci])], ["score", C.score[ci] === null ? "–" : String(C.score[ci])],
      ["threshold", d[5] === null ? null : pct(d[5], 0)], ["tags", tags], ["duration", d[8] === null ? null : secs(d[8])],
      ["baseline", C.base[ci] >= 0 ? OUT[C.base[ci]] + (f ? " → " + OUT[o] + " (flipped)" : " (unchanged)") : null]]));
    if (d[2] >= 0) { section(body, "Error"); textBlock(body, str(d[2])); }
    if (f) { section(body, "Baseline → this run"); put(body, compareOutputs(ci)); }
    section(body, "Prompt"); renderPrompt(body, d[0]);
    section(body, "Output"); textBlock(body, str(d[1]), "No output recorded.");
    if (d[7] && str(d[1]) !== null && d[7] > str(d[1]).length) put(body, el("div", "sub", "Shortened in the results file: the full output has " + num(d[7]) + " characters."));
    section(body, "Checks (" + d[3].length + ")");
    if (!d[3].length) put(body, el("div", "empty", "No check or grade recorded."));
    for (const res of d[3]) {
      const box = child(body, el("div", "check"));
      put(box, put(el("div", "head"), badge(res[1] ? "pass" : "fail", res[1] ? "PASS" : "FAIL"), el("span", null, str(res[0])),
        el("span", "sub", res[2] === null ? "" : "score " + res[2])));
      put(box, kv([["expected", str(res[3]) === null ? null : el("pre", null, str(res[3]))],
        ["actual", str(res[4]) === null ? null : el("pre", null, str(res[4]))],
        ["explanation", str(res[5])], ["judge", str(res[7])], ["label", str(res[8])],
        ["reasoning", str(res[6]) === null ? null : el("pre", null, str(res[6]))]]));
      if (res[9] >= 0) { const det = child(box, el("details")); put(det, el("summary", null, "raw judge reply")); textBlock(det, str(res[9])); }
      if (res[10] >= 0) { const det = child(box, el("details")); put(det, el("summary", null, "more")); textBlock(det, str(res[10])); }
    }
    section(body, "Model calls (" + d[4].length + ")");
    if (!d[4].length) put(body, el("div", "empty", "No model call recorded."));
    else {
      const t = child(body, el("table", "stats calls"));
      const hr = el("tr");
      for (const c of ["role", "model", "cached", "latency", "input", "output", "cached input", "cost"]) put(hr, el("th", c === "role" || c === "model" ? null : "num", c));
      put(t, put(el("thead"), hr));
      const tb = child(t, el("tbody"));
      for (const c of d[4]) put(tb, put(el("tr"), el("td", null, str(c[0])), el("td", null, str(c[1])), el("td", "num", c[2] ? "yes" : "no"),
        el("td", "num", secs(c[3])), el("td", "num", num(c[4])), el("td", "num", num(c[5])), el("td", "num", num(c[6])), el("td", "num", usd(c[7]))));
    }
    panel.hidden = false;
    document.body.classList.add("detail-open");
    panel.scrollTop = 0;
    for (const b of document.querySelectorAll("button.cell.sel")) b.classList.remove("sel");
    const mine = document.querySelector('button.cell[data-cell="' + ci + '"]');
    if (mine) mine.classList.add("sel");
  }
  function hideDetail() { document.getElementById("detail").hidden = true; selected = -1;
    document.body.classList.remove("detail-open");
    for (const b of document.querySelectorAll("button.cell.sel")) b.classList.remove("sel"); }

  renderHeader();
  renderBaseline();
  renderEvals();
  renderControls();
  applyFilters();
  document.documentElement.setAttribute("data-ready", "1");
})();
