/* The supervisors' dashboard: pickers, scorecard, trend, closed-loop funnel, findings, timeline.
 *
 * Everything on the page comes from the read API (/v1/...) with the supervisor's bearer
 * token, so the page shows exactly what that token may see. The token lives in this tab's
 * sessionStorage only. State that can be bookmarked (unit, period kind, period, language)
 * is kept in the URL fragment: #unit=WLY&kind=month&period=2025-06&lang=en.
 * Hooks for tests: <body data-state="loading|ready|login|error" data-loads="N">, and
 * data-testid / data-value attributes carrying the API's raw numbers next to their text. */
"use strict";

(function () {
  const I18N = window.PE_I18N;
  const CHARTS = window.PE_CHARTS;
  const TOKEN_KEY = "pe.dashboard.token";
  const LANG_KEY = "pe.dashboard.lang";
  const DEMO_KEY = "pe.dashboard.demo";
  const FUNNEL_PAGES = 20;
  const PAGE = 500;

  const state = {
    lang: "zh",
    tz: "Asia/Shanghai",
    token: null,
    demo: false,
    demoToken: false,
    units: [],
    byId: new Map(),
    unit: null,
    kind: "month",
    period: null,
    trend: null,
    loads: 0,
    generation: 0,
    ready: true,
    refreshSeconds: 30,
  };

  const $ = (id) => document.getElementById(id);

  // -- words ------------------------------------------------------------------------------

  function t(key, vars) {
    const table = I18N[state.lang] || I18N.zh;
    let text = table[key];
    if (text === undefined) text = (I18N.zh[key] !== undefined ? I18N.zh[key] : key);
    if (vars) {
      for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
    }
    return text;
  }

  function tOr(key, fallback) {
    const table = I18N[state.lang] || I18N.zh;
    return table[key] !== undefined ? table[key] : fallback;
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    $("who").textContent = state.demoToken && state.units.length ? `${t("role.district_supervisor")} · ${t("demo")}` : "";
    const sw = $("lang-switch");
    sw.textContent = state.lang === "zh" ? "English" : "中文";
    sw.lang = state.lang === "zh" ? "en" : "zh-CN";
  }

  // -- small helpers ------------------------------------------------------------------------

  function text(tag, content, cls) {
    const node = document.createElement(tag);
    if (content !== undefined && content !== null) node.textContent = String(content);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setBody(stateName) {
    document.body.dataset.state = stateName;
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function fixed(value, digits) {
    return isNumber(value) ? value.toFixed(digits) : "—";
  }

  function locale() {
    return state.lang === "zh" ? "zh-CN" : "en-GB";
  }

  function formatTime(iso) {
    if (!iso) return "—";
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return iso;
    return new Intl.DateTimeFormat(locale(), {
      timeZone: state.tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false,
    }).format(when);
  }

  /* An indicator's value as people read it: shares in %, hours, counts. */
  function formatFigure(value, definition) {
    if (!isNumber(value)) return "—";
    const def = definition || {};
    if (def.unit === "hours") return t("hours", { n: value.toFixed(1) });
    if (def.unit === "count") return t("count", { n: Math.round(value) });
    if ((def.scale || "fraction") === "fraction") return `${(value * 100).toFixed(1)}%`;
    return value.toFixed(2);
  }

  function formatRate(value) {
    return isNumber(value) ? `${(value * 100).toFixed(1)}%` : "—";
  }

  // -- the URL fragment ---------------------------------------------------------------------

  function readHash() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      if (!part) continue;
      const [key, value] = part.split("=");
      out[decodeURIComponent(key)] = decodeURIComponent(value || "");
    }
    return out;
  }

  function writeHash() {
    const parts = [
      `unit=${encodeURIComponent(state.unit || "")}`,
      `kind=${state.kind}`,
      `period=${encodeURIComponent(state.period || "")}`,
      `lang=${state.lang}`,
    ];
    if (state.refreshSeconds !== 30) parts.push(`refresh=${state.refreshSeconds}`);
    history.replaceState(null, "", `#${parts.join("&")}`);
  }

  // -- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function query(params) {
    const parts = [];
    for (const [key, value] of Object.entries(params)) {
      if (value === undefined || value === null || value === "") continue;
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
    return parts.length ? `?${parts.join("&")}` : "";
  }

  // -- periods in the network's time zone ---------------------------------------------------

  function localToday() {
    const text = new Intl.DateTimeFormat("en-CA", {
      timeZone: state.tz, year: "numeric", month: "2-digit", day: "2-digit",
    }).format(new Date());
    const [y, m] = text.split("-").map((n) => parseInt(n, 10));
    return { y, m };
  }

  function periodsFor(kind) {
    const { y, m } = localToday();
    const out = [];
    if (kind === "month") {
      for (let i = 0; i < 24; i += 1) {
        const index = y * 12 + (m - 1) - i;
        const yy = Math.floor(index / 12), mm = (index % 12) + 1;
        out.push(`${yy}-${String(mm).padStart(2, "0")}`);
      }
    } else if (kind === "quarter") {
      const q = Math.ceil(m / 3);
      for (let i = 0; i < 8; i += 1) {
        const index = y * 4 + (q - 1) - i;
        out.push(`${Math.floor(index / 4)}-Q${(index % 4) + 1}`);
      }
    } else if (kind === "half_year") {
      const h = m <= 6 ? 1 : 2;
      for (let i = 0; i < 6; i += 1) {
        const index = y * 2 + (h - 1) - i;
        out.push(`${Math.floor(index / 2)}-H${(index % 2) + 1}`);
      }
    } else {
      for (let i = 0; i < 5; i += 1) out.push(String(y - i));
    }
    return out;
  }

  function periodLabel(name) {
    let match = /^(\d{4})-(\d{2})$/.exec(name);
    if (match) {
      const mon = new Intl.DateTimeFormat("en-GB", { month: "short", timeZone: "UTC" })
        .format(new Date(Date.UTC(+match[1], +match[2] - 1, 1)));
      return t("periodMonth", { y: match[1], m: +match[2], mon });
    }
    match = /^(\d{4})-Q([1-4])$/.exec(name);
    if (match) return t("periodQuarter", { y: match[1], q: match[2] });
    match = /^(\d{4})-H([12])$/.exec(name);
    if (match) return t(match[2] === "1" ? "periodHalf1" : "periodHalf2", { y: match[1] });
    return /^\d{4}$/.test(name) ? t("periodYear", { y: name }) : name;
  }

  function shortPeriod(name) {
    const match = /^(\d{4})-(\d{2})$/.exec(name);
    return match ? `${match[1].slice(2)}/${match[2]}` : name;
  }

  // -- pickers ------------------------------------------------------------------------------

  const LEVELS = ["centre", "institute", "station"];
  const PICKERS = { centre: "pick-district", institute: "pick-institute", station: "pick-station" };

  function unitsOf(level, parentId) {
    return state.units.filter((u) => u.level === level && (parentId === undefined || u.parent_id === parentId));
  }

  /* The chosen unit at each level, from state.unit up its parents. */
  function chain() {
    const out = {};
    let node = state.byId.get(state.unit);
    while (node) {
      if (LEVELS.includes(node.level)) out[node.level] = node.site_id;
      node = state.byId.get(node.parent_id);
    }
    return out;
  }

  function fillPickers() {
    const chosen = chain();
    let parent;
    let parentShown = false;
    for (const level of LEVELS) {
      const select = $(PICKERS[level]);
      const wrap = select.closest("label");
      const options = parentShown ? unitsOf(level, parent) : unitsOf(level);
      clear(select);
      if (parentShown && options.length) {
        const all = text("option", t("all"));
        all.value = "";
        select.appendChild(all);
      }
      for (const unit of options) {
        const option = text("option", unit.name);
        option.value = unit.site_id;
        option.dataset.level = level;
        select.appendChild(option);
      }
      wrap.hidden = options.length === 0;
      select.value = chosen[level] && options.some((u) => u.site_id === chosen[level]) ? chosen[level] : (select.options[0] ? select.options[0].value : "");
      if (select.value) {
        parent = select.value;
        parentShown = true;
      } else if (options.length) {
        parentShown = true;
        parent = "\u0000"; // "(all)": nothing deeper is listed
      }
    }
  }

  function pickedUnit() {
    let picked = null;
    for (const level of LEVELS) {
      const select = $(PICKERS[level]);
      if (!select.closest("label").hidden && select.value) picked = select.value;
    }
    return picked;
  }

  function onPick(level) {
    const select = $(PICKERS[level]);
    if (select.value) {
      state.unit = select.value;
    } else {
      const index = LEVELS.indexOf(level);
      let up = null;
      for (let i = index - 1; i >= 0; i -= 1) {
        const above = $(PICKERS[LEVELS[i]]);
        if (!above.closest("label").hidden && above.value) { up = above.value; break; }
      }
      state.unit = up || state.unit;
    }
    fillPickers();
    state.unit = pickedUnit() || state.unit;
    writeHash();
    loadAll();
  }

  function fillPeriods() {
    const select = $("pick-period");
    const names = periodsFor(state.kind);
    clear(select);
    for (const name of names) {
      const option = text("option", periodLabel(name));
      option.value = name;
      select.appendChild(option);
    }
    if (!names.includes(state.period)) state.period = names[0];
    select.value = state.period;
    $("pick-kind").value = state.kind;
  }

  // -- rendering: scorecard -----------------------------------------------------------------

  function indicatorName(item) {
    const title = item.definition && item.definition.title;
    return tOr(`ind.${item.code}`, title || item.code);
  }

  function renderScorecard(card) {
    const unit = state.byId.get(card.unit_id);
    $("scorecard-unit").textContent = `${card.name || (unit && unit.name) || card.unit_id} · ${periodLabel(card.period)}`;
    const composite = card.composite || {};
    const value = $("composite-value");
    value.textContent = composite.status === "ok" || isNumber(composite.value) ? fixed(composite.value, 1) : t("status.insufficient_data");
    value.dataset.value = isNumber(composite.value) ? String(composite.value) : "";
    value.dataset.status = composite.status || "";
    const rank = card.rank || {};
    const rankNode = $("rank-value");
    rankNode.textContent = isNumber(rank.position) ? t("rankOf", { pos: rank.position, of: rank.of }) : t("rankNone");
    rankNode.dataset.value = isNumber(rank.position) ? String(rank.position) : "";
    const model = card.model || {};
    $("model-value").textContent = model.model_id ? `${model.model_id} v${model.version}` : "—";
    $("covered-value").textContent = isNumber(composite.covered_weight) ? fixed(composite.covered_weight, 0) : "—";
    const body = $("indicator-rows");
    clear(body);
    for (const item of card.indicators || []) {
      const row = document.createElement("tr");
      row.dataset.testid = "indicator-row";
      row.dataset.code = item.code;
      if (item.in_model === false) row.className = "muted";
      row.appendChild(text("td", indicatorName(item)));
      row.appendChild(text("td", tOr(`area.${item.area}`, item.area || "")));
      const cell = text("td", formatFigure(item.value, item.definition), "num");
      cell.dataset.testid = "indicator-value";
      cell.dataset.value = isNumber(item.value) ? String(item.value) : "";
      row.appendChild(cell);
      const count = (v) => fixed(v, v % 1 ? 1 : 0);
      let ratio = "—";
      if (isNumber(item.numerator) && isNumber(item.denominator)) ratio = `${count(item.numerator)} / ${count(item.denominator)}`;
      else if (isNumber(item.denominator)) ratio = `n = ${count(item.denominator)}`;
      else if (isNumber(item.numerator)) ratio = count(item.numerator);
      row.appendChild(text("td", ratio, "num"));
      const status = text("td", t(`status.${item.status}`), `status ${item.status}`);
      status.dataset.status = item.status;
      row.appendChild(status);
      row.appendChild(text("td", isNumber(item.effective_weight) ? fixed(item.effective_weight, 1) : "—", "num"));
      row.appendChild(text("td", isNumber(item.score) ? fixed(item.score, 1) : "—", "num"));
      body.appendChild(row);
    }
    $("scorecard").setAttribute("aria-busy", "false");
    fillTrendChoices(card.indicators || []);
  }

  function fillTrendChoices(indicators) {
    const select = $("trend-indicator");
    const current = select.value || "composite";
    clear(select);
    const composite = text("option", t("composite"));
    composite.value = "composite";
    select.appendChild(composite);
    for (const item of indicators) {
      const option = text("option", indicatorName(item));
      option.value = item.code;
      select.appendChild(option);
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : "composite";
  }

  // -- rendering: trend ---------------------------------------------------------------------

  function renderTrend() {
    const trend = state.trend;
    const container = $("trend-chart");
    if (!trend) return;
    const code = $("trend-indicator").value || "composite";
    let definition = null;
    const points = (trend.points || []).map((point) => {
      let value = null;
      if (code === "composite") {
        value = isNumber(point.composite) ? point.composite : null;
      } else {
        const figure = (point.indicators || {})[code] || {};
        if (figure.definition) definition = figure.definition;
        value = isNumber(figure.value) ? figure.value : null;
      }
      return { key: point.period, label: shortPeriod(point.period), value };
    });
    if (code !== "composite" && !definition) definition = state.definitions[code] || null;
    const fmt = code === "composite" ? (v) => v.toFixed(0) : (v) => formatFigure(v, definition);
    CHARTS.lineChart(container, points, {
      format: fmt,
      max: code === "composite" ? 100 : undefined,
      empty: t("noData"),
    });
    container.dataset.indicator = code;
    container.dataset.points = String(points.filter((p) => p.value !== null).length);
  }

  // -- rendering: closed loop ---------------------------------------------------------------

  function renderFunnel(findings, partial) {
    const live = findings.filter((f) => f.stage !== "VOIDED");
    const steps = [
      { key: "found", label: t("funnel.found"), value: live.length },
      { key: "fed_back", label: t("funnel.fed_back"), value: live.filter((f) => f.fed_back_at).length },
      { key: "rectified", label: t("funnel.rectified"), value: live.filter((f) => f.rectified_at).length },
      { key: "verified", label: t("funnel.verified"), value: live.filter((f) => f.verified_at).length },
    ];
    CHARTS.funnel($("funnel"), steps);
    $("funnel").dataset.partial = partial ? "true" : "false";
    if (partial) $("funnel").appendChild(text("p", t("funnelPartial", { n: findings.length }), "sub"));
  }

  function renderLoopFigures(summary) {
    const box = $("loop-figures");
    clear(box);
    const figures = summary.indicators || {};
    const shown = [
      ["acknowledged_on_time", (f) => formatRate(f.value)],
      ["rectified_on_time", (f) => formatRate(f.value)],
      ["verified_first_pass", (f) => formatRate(f.value)],
      ["overdue_backlog", (f) => (isNumber(f.value) ? String(f.value) : "—")],
      ["reopened", (f) => (isNumber(f.value) ? String(f.value) : "—")],
      ["returned", (f) => (isNumber(f.value) ? String(f.value) : "—")],
      ["time_to_close", (f) => (isNumber(f.median_hours) ? t("hours", { n: f.median_hours.toFixed(1) }) : "—")],
    ];
    for (const [code, format] of shown) {
      const figure = figures[code];
      if (!figure) continue;
      const cell = text("div", null, "figure");
      const value = text("span", figure.status === "insufficient_data" ? t("status.insufficient_data") : format(figure), "value");
      value.dataset.testid = `loop-${code}`;
      const raw = code === "time_to_close" ? figure.median_hours : figure.value;
      value.dataset.value = isNumber(raw) ? String(raw) : "";
      cell.appendChild(value);
      cell.appendChild(text("span", t(`loop.${code}`), "label"));
      box.appendChild(cell);
    }
    const found = figures.found;
    box.dataset.found = found && isNumber(found.value) ? String(found.value) : "";
  }

  // -- rendering: findings ------------------------------------------------------------------

  function renderFindings(overdue, recent) {
    const body = $("finding-rows");
    clear(body);
    const seen = new Set();
    const rows = [];
    for (const f of overdue) { seen.add(f.finding_id); rows.push(f); }
    for (const f of recent) { if (!seen.has(f.finding_id)) { seen.add(f.finding_id); rows.push(f); } }
    const shown = rows.slice(0, 200);
    for (const f of shown) {
      const row = document.createElement("tr");
      row.dataset.testid = "finding-row";
      row.dataset.finding = f.finding_id;
      row.dataset.overdue = f.overdue ? "true" : "false";
      row.tabIndex = 0;
      if (f.overdue) row.className = "overdue";
      const id = text("td", f.finding_id, "mono");
      if (f.overdue) id.appendChild(text("span", t("overdue"), "badge danger"));
      row.appendChild(id);
      const site = state.byId.get(f.site_id);
      row.appendChild(text("td", site ? site.name : f.site_id));
      row.appendChild(text("td", t(`severity.${f.severity}`), `sev ${f.severity}`));
      row.appendChild(text("td", t(`stage.${f.stage}`)));
      const sla = text("td", t(`sla.${f.sla_status}`), `sla ${f.sla_status}`);
      if (f.overdue && isNumber(f.overdue_working_days)) sla.title = t("overdueDays", { n: f.overdue_working_days });
      row.appendChild(sla);
      row.appendChild(text("td", formatTime(f.current_due_at), "mono"));
      row.addEventListener("click", () => openTimeline(f.finding_id));
      row.addEventListener("keydown", (event) => { if (event.key === "Enter") openTimeline(f.finding_id); });
      body.appendChild(row);
    }
    if (!shown.length) {
      const row = document.createElement("tr");
      const cell = text("td", t("noFindings"), "empty");
      cell.colSpan = 6;
      row.appendChild(cell);
      body.appendChild(row);
    }
    const more = $("findings-more");
    more.hidden = rows.length <= shown.length;
    more.textContent = t("moreFindings");
    $("findings").dataset.overdue = String(overdue.length);
  }

  // -- the timeline drawer ------------------------------------------------------------------

  function eventName(type) {
    const match = /^practice\.finding\.([a-z_]+)\.v\d+$/.exec(type || "");
    return match ? tOr(`event.${match[1]}`, match[1]) : type;
  }

  function summarise(data) {
    const parts = [];
    for (const [key, value] of Object.entries(data || {})) {
      if (value === null || typeof value === "object") continue;
      if (/_at$/.test(key) && typeof value === "string") {
        parts.push(`${key}: ${formatTime(value)}`);
      } else {
        parts.push(`${key}: ${value}`);
      }
      if (parts.length >= 5) break;
    }
    return parts.join(" · ");
  }

  async function openTimeline(findingId) {
    const drawer = $("timeline");
    drawer.hidden = false;
    drawer.dataset.state = "loading";
    drawer.dataset.finding = findingId;
    $("timeline-title").textContent = findingId;
    clear($("timeline-facts"));
    clear($("timeline-events"));
    try {
      const finding = await api(`/v1/findings/${encodeURIComponent(findingId)}`);
      if (drawer.dataset.finding !== findingId) return;
      const facts = $("timeline-facts");
      const site = state.byId.get(finding.site_id);
      const unit = state.byId.get(finding.unit_id);
      const rows = [
        ["fact.site", site ? `${site.name} (${finding.site_id})` : finding.site_id],
        ["fact.unit", unit ? unit.name : finding.unit_id],
        ["fact.severity", t(`severity.${finding.severity}`)],
        ["fact.category", finding.category],
        ["fact.stage", t(`stage.${finding.stage}`)],
        ["fact.sla", t(`sla.${finding.sla_status}`)],
        ["fact.recorded", formatTime(finding.recorded_at)],
        ["fact.due", formatTime(finding.current_due_at)],
        ["fact.cycle", finding.cycle],
        ["fact.description", finding.description],
      ];
      for (const [key, value] of rows) {
        if (value === undefined || value === null || value === "") continue;
        facts.appendChild(text("dt", t(key)));
        facts.appendChild(text("dd", value));
      }
      const list = $("timeline-events");
      for (const event of finding.timeline || []) {
        const item = document.createElement("li");
        item.dataset.testid = "timeline-event";
        item.dataset.type = event.type;
        item.dataset.position = String(event.position);
        item.appendChild(text("time", formatTime(event.time)));
        item.appendChild(text("strong", eventName(event.type)));
        const detail = summarise(event.data);
        if (detail) item.appendChild(text("span", detail, "detail"));
        list.appendChild(item);
      }
      drawer.dataset.state = "ready";
      drawer.dataset.events = String((finding.timeline || []).length);
    } catch (error) {
      drawer.dataset.state = "error";
      $("timeline-events").appendChild(text("li", t("failed", { detail: error.message }), "error"));
    }
  }

  // -- loading ------------------------------------------------------------------------------

  function showNotice(message, kind) {
    const notice = $("notice");
    notice.hidden = !message;
    notice.textContent = message || "";
    notice.className = `notice ${kind || ""}`;
  }

  async function allFindings(params) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < FUNNEL_PAGES; page += 1) {
      const body = await api(`/v1/findings${query({ ...params, limit: PAGE, cursor })}`);
      items.push(...(body.items || []));
      cursor = body.next_cursor;
      if (!cursor) return { items, partial: false };
    }
    return { items, partial: true };
  }

  async function loadAll() {
    if (!state.unit || !state.period) return;
    const generation = ++state.generation;
    const unit = encodeURIComponent(state.unit);
    const current = () => generation === state.generation;
    setBody("loading");
    document.body.dataset.unit = state.unit;
    document.body.dataset.period = state.period;
    $("scorecard").setAttribute("aria-busy", "true");
    const jobs = [
      api(`/v1/units/${unit}/scorecard${query({ period: state.period })}`).then((card) => {
        if (!current()) return;
        state.definitions = {};
        for (const item of card.indicators || []) state.definitions[item.code] = item.definition;
        renderScorecard(card);
      }),
      api(`/v1/units/${unit}/trend${query({ kind: state.kind, last: 12, until: state.period })}`).then((trend) => {
        if (!current()) return;
        state.trend = trend;
      }),
      api(`/v1/units/${unit}/closed-loop${query({ period: state.period })}`).then((summary) => {
        if (current()) renderLoopFigures(summary);
      }),
      Promise.all([
        api(`/v1/findings${query({ unit: state.unit, overdue: "true", sort: "due_at", order: "asc", limit: 100 })}`),
        allFindings({ unit: state.unit, period: state.period, sort: "recorded_at", order: "desc" }),
      ]).then(([overdue, period]) => {
        if (!current()) return;
        renderFunnel(period.items, period.partial);
        renderFindings(overdue.items || [], period.items);
      }),
    ];
    const results = await Promise.allSettled(jobs);
    if (!current()) return;
    renderTrend();
    const failure = results.find((r) => r.status === "rejected");
    if (failure) {
      const error = failure.reason;
      if (error instanceof ApiError && error.status === 401) {
        signOut(t("badToken"));
        return;
      }
      if (error instanceof ApiError && error.status === 503) {
        showNotice(t("notReady"), "warn");
      } else {
        showNotice(t("failed", { detail: error.message || String(error) }), "error");
      }
      setBody("error");
    } else if (state.ready) {
      showNotice("");
    }
    state.loads += 1;
    document.body.dataset.loads = String(state.loads);
    if (!failure) setBody("ready");
  }

  // -- readiness (the views catching up after a large load) ---------------------------------

  async function watchReadiness() {
    let body = null;
    let ready = true;
    try {
      const response = await fetch("/readyz", { cache: "no-store" });
      body = await response.json();
      ready = response.ok;
    } catch (_) {
      ready = false;
    }
    const wasReady = state.ready;
    state.ready = ready;
    if (!ready) {
      const projections = (body && body.checks && body.checks.projections && body.checks.projections.projections) || {};
      let behind = 0;
      for (const row of Object.values(projections)) behind = Math.max(behind, row.events_behind || 0);
      showNotice(behind ? t("catchingUp", { n: behind.toLocaleString() }) : t("notReady"), "warn");
      setTimeout(watchReadiness, 3000);
      return;
    }
    if (!wasReady) {
      showNotice("");
      loadAll();
    }
    setTimeout(watchReadiness, 15000);
  }

  // -- sign-in ------------------------------------------------------------------------------

  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("sign-out").hidden = true;
    $("refresh").hidden = true;
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    setBody("login");
    $("token-input").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(DEMO_KEY);
    state.token = null;
    state.demoToken = false;
    $("who").textContent = "";
    showLogin(message);
  }

  async function start() {
    let units;
    try {
      units = await api("/v1/units");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return signOut(t("badToken"));
      if (error instanceof ApiError && error.status === 403) return signOut(t("forbiddenToken"));
      $("login").hidden = true;
      $("main").hidden = false;
      showNotice(t("failed", { detail: error.message }), "error");
      setBody("error");
      setTimeout(start, 3000);
      return undefined;
    }
    state.units = units.items || [];
    state.byId = new Map(state.units.map((u) => [u.site_id, u]));
    $("login").hidden = true;
    $("main").hidden = false;
    $("sign-out").hidden = false;
    $("refresh").hidden = false;
    $("who").textContent = state.demoToken ? `${t("role.district_supervisor")} · ${t("demo")}` : "";
    const hash = readHash();
    const pickable = state.units.filter((u) => LEVELS.includes(u.level));
    if (hash.unit && state.byId.has(hash.unit)) {
      state.unit = hash.unit;
    } else if (!state.byId.has(state.unit)) {
      state.unit = pickable.length ? pickable[0].site_id : null;
    }
    if (["month", "quarter", "half_year", "year"].includes(hash.kind)) state.kind = hash.kind;
    if (hash.period) state.period = hash.period;
    fillPickers();
    state.unit = pickedUnit() || state.unit;
    fillPeriods();
    writeHash();
    await loadAll();
    watchReadiness();
    return undefined;
  }

  async function init() {
    const hash = readHash();
    state.lang = hash.lang === "en" || hash.lang === "zh" ? hash.lang : (localStorage.getItem(LANG_KEY) || "zh");
    if (hash.refresh !== undefined && /^\d+$/.test(hash.refresh)) state.refreshSeconds = parseInt(hash.refresh, 10);
    applyLanguage();
    try {
      const config = await (await fetch("/dashboard/config.json", { cache: "no-store" })).json();
      state.tz = config.timezone || state.tz;
      state.demo = Boolean(config.demo);
    } catch (_) {
      state.demo = false;
    }
    state.token = sessionStorage.getItem(TOKEN_KEY);
    state.demoToken = Boolean(state.token) && sessionStorage.getItem(DEMO_KEY) === "1";
    if (!state.token && state.demo) {
      try {
        const response = await fetch("/dashboard/demo-token", { cache: "no-store" });
        if (response.ok) {
          state.token = (await response.json()).token;
          state.demoToken = true;
          sessionStorage.setItem(TOKEN_KEY, state.token);
          sessionStorage.setItem(DEMO_KEY, "1");
        }
      } catch (_) {
        state.token = null;
      }
    }
    wire();
    if (!state.token) {
      showLogin();
      return;
    }
    await start();
    if (state.refreshSeconds > 0) {
      setInterval(() => { if (!document.hidden && state.token && state.ready) loadAll(); }, state.refreshSeconds * 1000);
    }
  }

  function wire() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      state.token = value;
      state.demoToken = false;
      sessionStorage.setItem(TOKEN_KEY, value);
      sessionStorage.removeItem(DEMO_KEY);
      $("token-input").value = "";
      start();
    });
    $("sign-out").addEventListener("click", () => signOut());
    $("refresh").addEventListener("click", () => loadAll());
    $("lang-switch").addEventListener("click", () => {
      state.lang = state.lang === "zh" ? "en" : "zh";
      localStorage.setItem(LANG_KEY, state.lang);
      applyLanguage();
      if (state.units.length) {
        fillPickers();
        fillPeriods();
        writeHash();
        loadAll();
      }
    });
    for (const level of LEVELS) $(PICKERS[level]).addEventListener("change", () => onPick(level));
    $("pick-kind").addEventListener("change", () => {
      state.kind = $("pick-kind").value;
      state.period = null;
      fillPeriods();
      writeHash();
      loadAll();
    });
    $("pick-period").addEventListener("change", () => {
      state.period = $("pick-period").value;
      writeHash();
      loadAll();
    });
    $("trend-indicator").addEventListener("change", renderTrend);
    $("timeline-close").addEventListener("click", () => {
      $("timeline").hidden = true;
      $("timeline").dataset.finding = "";
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") $("timeline").hidden = true;
    });
  }

  state.definitions = {};
  document.addEventListener("DOMContentLoaded", init);
})();
