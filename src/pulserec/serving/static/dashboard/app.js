// The pulserec dashboard: a small single-page app over the JSON API (no framework, no CDN).
// Routes: /dashboard (overview), /dashboard/users/{id}, /dashboard/items/{id}, and the pages of
// pages.js: /dashboard/history, /dashboard/users, /dashboard/items, /dashboard/tasks, /dashboard/config;
// controls.js: /dashboard/controls (filters, promotions, exploration).

import { colour, donut, formatNumber, groupedBars, horizontalBars, stackedColumns } from "./charts.js";
import {
  QUANTILE_COLOURS, ago, api, appPath, card, chip, chooseApp, currentApp, duration, empty, enc, fill, h, itemHref, legend,
  ready, showSignOut, userHref, view, whenKeyChanges,
} from "./ui.js";
import { itemActivity, renderConfig, renderHistory, renderItems, renderTasks, renderUsers } from "./pages.js";
import { renderControls } from "./controls.js";

const PAGES = {
  history: renderHistory, users: renderUsers, items: renderItems, tasks: renderTasks, controls: renderControls, config: renderConfig,
};

const REFRESH_MS = 2000;
let stopPage = () => {};

// -- overview ------------------------------------------------------------------------------

function kpi(label, id) {
  return h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value", id }, "–"));
}

function renderOverview() {
  const shell = h("div", { class: "page overview" },
    h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("span", { class: "live", id: "live-dot" }, "live")),
    h("div", { class: "kpis" },
      kpi("Events / s (60 s avg)", "kpi-rate"), kpi("Events applied", "kpi-events"), kpi("Users", "kpi-users"),
      kpi("Items", "kpi-items"), kpi("Co-occurrence pairs", "kpi-nnz"), kpi("Latency p50 / p99", "kpi-latency")),
    h("div", { class: "grid" },
      card("Live events per second", { id: "events-card", wide: true, subtitle: "last 60 s, by event type" },
        h("div", { id: "events-chart" }), h("div", { id: "events-legend" })),
      card("Recommendation latency", { id: "latency-card", subtitle: "ms, by strategy" },
        h("div", { id: "latency-chart" })),
      card("Trending now", { id: "trending-card", subtitle: "decayed popularity" }, h("div", { id: "trending-chart" })),
      card("Catalogue coverage", { id: "coverage-card", subtitle: "of recent recommendations" }, h("div", { id: "coverage-chart" })),
      card("CTR and conversion", { id: "engagement-card", subtitle: "by strategy and A/B variant" }, h("div", { id: "engagement" })),
      card("Models", { id: "models-card", wide: true, subtitle: "serving strategies and the last evaluation" }, h("div", { id: "models" }))));
  fill(view, shell);
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      updateOverview(await api("/dashboard/api/overview?window=60&top=10"));
      document.getElementById("live-dot")?.classList.remove("stale");
    } catch (error) {
      document.getElementById("live-dot")?.classList.add("stale");
      console.warn("overview refresh failed:", error.message);
    }
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function updateOverview(data) {
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  const latency = data.latency_ms.overall;
  set("kpi-rate", formatNumber(data.events_per_second.average));
  set("kpi-events", formatNumber(data.totals.events_applied));
  set("kpi-users", formatNumber(data.totals.users));
  set("kpi-items", formatNumber(data.totals.items));
  set("kpi-nnz", formatNumber(data.totals.cooccurrence_nnz));
  const latencyBox = document.getElementById("kpi-latency");
  if (latencyBox) fill(latencyBox, latency.count
    ? [`${formatNumber(latency.p50, 1)} / ${formatNumber(latency.p99, 1)}`, h("span", { class: "unit" }, " ms")] : "–");

  const rate = data.events_per_second;
  const points = rate.series.map((p) => ({ label: new Date(p.t * 1000).toLocaleTimeString("en-GB"), values: p.by_type }));
  fill(document.getElementById("events-chart"), stackedColumns(points, rate.types, { width: 760, height: 210, unit: " ev/s" }));
  fill(document.getElementById("events-legend"), rate.types.length ? legend(rate.types) : empty("No events in the last minute."));

  const strategies = Object.entries(data.latency_ms.by_strategy);
  fill(document.getElementById("latency-chart"), strategies.length
    ? [groupedBars(strategies.map(([name, q]) => ({ label: name, values: q })), ["p50", "p90", "p99"], {
        unit: " ms", colors: QUANTILE_COLOURS }), legend(["p50", "p90", "p99"], QUANTILE_COLOURS)]
    : empty("No recommendation requests yet."));

  fill(document.getElementById("trending-chart"), data.trending.length
    ? horizontalBars(data.trending.map((t) => ({ label: t.title || t.item_id, value: t.score, href: itemHref(t.item_id),
        note: `${t.events} events${t.category ? ", " + t.category : ""}`, color: "#f5a524" })), { width: 440, labelWidth: 150 })
    : empty("Nothing trending yet."));

  const coverage = data.coverage;
  fill(document.getElementById("coverage-chart"), coverage.answers
    ? h("div", { class: "coverage" }, donut(coverage.share, "of catalogue"),
        h("dl", { class: "facts" },
          h("dt", {}, "Distinct items shown"), h("dd", {}, formatNumber(coverage.distinct_items)),
          h("dt", {}, "Catalogue items"), h("dd", {}, formatNumber(coverage.catalogue_items)),
          h("dt", {}, "Recent answers"), h("dd", {}, formatNumber(coverage.answers))))
    : empty("No recommendations served yet."));

  fill(document.getElementById("engagement"), engagementTable(data.engagement));
  fill(document.getElementById("models"), [defaultChoice(data.default_choice), ...modelsTable(data.models, data.evaluation)]);
  ready();
}

function engagementTable(engagement) {
  if (!engagement.available) return empty(engagement.note || "No data yet.");
  const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(2)}%`);
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["Strategy", "Variant", "Impressions", "Clicks", "CTR", "Conversions", "Conv. rate"].map((c) => h("th", {}, c)))),
    h("tbody", {}, engagement.rows.map((r) => h("tr", {},
      h("td", {}, r.strategy), h("td", {}, r.variant ?? "–"), h("td", { class: "num" }, formatNumber(r.impressions)),
      h("td", { class: "num" }, formatNumber(r.clicks)), h("td", { class: "num" }, pct(r.ctr)),
      h("td", { class: "num" }, formatNumber(r.conversions)), h("td", { class: "num" }, pct(r.conversion_rate))))));
}

// What serves without strategy=: the built-in blend, or the blend `auto` chose on validation.
function defaultChoice(choice) {
  if (!choice || !choice.chosen) {
    return h("p", { id: "default-choice", class: "muted" }, "Default: ", choice ? choice.blend : "built-in blend");
  }
  // One weight per history bucket (`history_buckets`: which users each is for); a number in older choices.
  const buckets = choice.history_buckets || ["all users"];
  const weights = buckets.map((label, k) => `${label}: ` + Object.entries(choice.weights)
    .map(([n, w]) => [n, Array.isArray(w) ? w[k] : w]).filter(([, w]) => w > 0).map(([n, w]) => `${n} ${w}`).join(", "))
    .join("; ");
  const scores = Object.entries(choice.validation).map(([n, v]) => `${n} ${formatNumber(v, 4)}`).join(", ");
  const when = new Date(choice.chosen_at * 1000).toLocaleString();
  return h("p", { id: "default-choice" }, `Default chosen on validation (${choice.validation_split}, ${choice.metric}) at ${when}: `,
    h("code", {}, weights), h("br", {}), h("span", { class: "muted" }, `validation: ${scores}`));
}

function modelsTable(models, evaluation) {
  const metrics = evaluation.metrics || {};
  const names = [...new Set(Object.values(metrics).flatMap((m) => Object.keys(m || {})))].slice(0, 6);
  const table = h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["Strategy", "Kind", "Trained on", "Age", ...names].map((c) => h("th", {}, c)))),
    h("tbody", {}, models.map((m) => h("tr", {},
      h("td", {}, h("code", {}, m.name)), h("td", {}, m.kind),
      // GET /models: a batch model's metadata holds `events` (its training set) and `trained_at`.
      h("td", { class: "num" }, m.online || m.events === undefined ? "online" : `${formatNumber(m.events)} events`),
      h("td", { class: "num" }, m.age_s === null || m.age_s === undefined ? "live" : duration(m.age_s)),
      names.map((n) => h("td", { class: "num" }, metrics[m.name]?.[n] === undefined ? "–" : formatNumber(metrics[m.name][n], 3)))))));
  const note = evaluation.report_url
    ? h("p", { class: "muted" }, "Last evaluation: ", h("a", { href: evaluation.report_url, id: "report-anchor" }, "open the report"))
    : h("p", { class: "muted" }, "No evaluation report yet (run ", h("code", {}, "pulserec evaluate --report <data-dir>/reports"), ").");
  return [table, note];
}

// -- user page -----------------------------------------------------------------------------

function renderUser(userId) {
  const shell = h("div", { class: "page user" }, h("div", { class: "loading" }, "Loading profile…"));
  fill(view, shell);
  let stopped = false;
  (async () => {
    let profile;
    try {
      profile = await api(`/users/${enc(userId)}/profile`);
    } catch (error) {
      if (stopped) return;
      fill(shell, h("div", { class: "page-head" }, h("h1", {}, userId)),
        empty(error.status === 404 ? "No such user: nobody with this id has sent an event." : error.message));
      ready();
      return;
    }
    if (stopped) return;
    const models = await api("/models").catch(() => ({ models: [] }));
    fill(shell, userHeader(profile), h("div", { class: "grid two" },
      h("div", { class: "column" },
        card("Interests by category", { id: "interests-card", subtitle: "time-decayed" }, interestChart(profile.interests.categories, "#5b8def")),
        card("Interests by tag", { id: "tags-card", subtitle: "time-decayed" }, interestChart(profile.interests.tags, "#a78bfa"))),
      h("div", { class: "column" },
        card("Recommendations now", { id: "recs-card", subtitle: "what this user would see" },
          strategyPicker(models.models, (name) => loadRecommendations(userId, name)), h("div", { id: "recs" })),
        card("Recent events", { id: "recent-card", subtitle: `${profile.recent_items.length} latest` }, recentList(profile.recent_items)))));
    await loadRecommendations(userId, "");
    ready();
  })();
  return () => { stopped = true; };
}

function userHeader(p) {
  const facts = [
    ["Events", formatNumber(p.event_count)], ["First seen", ago(p.first_seen)], ["Last seen", ago(p.last_seen)],
    ["Device", p.favourite_device || "–"], ["Location", p.favourite_location || "–"], ["Time of day", p.time_of_day || "–"],
  ];
  return h("div", { class: "profile-head card wide" },
    h("div", {},
      h("div", { class: "eyebrow" }, "User"),
      h("h1", { id: "user-id" }, p.user_id),
      h("div", { class: "chips", id: "segments" }, (p.segments || []).map((s) => chip(s, "segment")))),
    h("dl", { class: "facts inline" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("div", { class: "counts" }, Object.entries(p.counts_by_type || {}).map(([type, n]) =>
      h("span", { class: "count" }, h("i", { style: `background:${colour(type)}` }), `${type} ${formatNumber(n)}`))));
}

function interestChart(entries, color) {
  if (!entries || !entries.length) return empty("No interests yet.");
  return horizontalBars(entries.map((e) => ({ label: e.name, value: e.score, color })), { width: 460, labelWidth: 140 });
}

function recentList(recent) {
  if (!recent.length) return empty("No events with an item yet.");
  return h("ol", { class: "timeline" }, recent.map((r) => h("li", {},
    chip(r.type, "type"), h("a", { href: itemHref(r.item_id), "data-link": true, class: "clip", title: r.title || r.item_id }, r.title || r.item_id),
    h("span", { class: "muted when" }, ago(r.ts)))));
}

function strategyPicker(models, onChange) {
  const select = h("select", { id: "strategy", "aria-label": "Strategy", onchange: (e) => onChange(e.target.value) },
    h("option", { value: "" }, "default (blend)"),
    models.filter((m) => m.name !== "default").map((m) => h("option", { value: m.name }, m.name)));
  return h("label", { class: "picker" }, "Strategy ", select);
}

async function loadRecommendations(userId, strategy) {
  const box = document.getElementById("recs");
  if (!box) return;
  const query = new URLSearchParams({ n: "10" });
  if (strategy) query.set("strategy", strategy);
  try {
    const answer = await api(`/users/${enc(userId)}/recommendations?${query}`);
    fill(box, answer.cold_start ? h("p", { class: "notice" }, "Cold start: no history yet, showing what is trending.") : null,
      recommendationList(answer.items));
  } catch (error) {
    fill(box, empty(error.message));
  }
}

function recommendationList(items) {
  if (!items.length) return empty("No recommendations (nothing matches the filters).");
  return h("ol", { class: "recs", id: "rec-list" }, items.map((r, i) => h("li", { class: "rec" },
    h("span", { class: "rank" }, String(i + 1)),
    h("div", { class: "rec-main" },
      h("a", { href: itemHref(r.item_id), "data-link": true, class: "rec-title", title: r.title || r.item_id }, r.title || r.item_id),
      h("div", { class: "rec-meta" }, r.category ? chip(r.category) : null, h("span", { class: "reason" }, r.reason))),
    h("div", { class: "rec-score" }, h("span", { class: "muted" }, r.source), h("b", {}, formatNumber(r.score, 3))))));
}

// -- item page -----------------------------------------------------------------------------

function renderItem(itemId) {
  const shell = h("div", { class: "page item" }, h("div", { class: "loading" }, "Loading item…"));
  fill(view, shell);
  let stopped = false;
  (async () => {
    try {
      const [item, similar] = await Promise.all([api(`/items/${enc(itemId)}`), api(`/items/${enc(itemId)}/similar?n=10`)]);
      if (stopped) return;
      fill(shell,
        h("div", { class: "profile-head card wide" },
          h("div", {}, h("div", { class: "eyebrow" }, "Item"), h("h1", { id: "item-title", title: item.title || item.item_id }, item.title || item.item_id),
            h("div", { class: "chips" }, chip(item.item_id), item.category ? chip(item.category, "segment") : null,
              item.active ? null : chip("inactive", "warn"), (item.tags || []).map((t) => chip(t)))),
          h("dl", { class: "facts inline" },
            h("dt", {}, "Price"), h("dd", {}, item.price === null ? "–" : formatNumber(item.price)),
            h("dt", {}, "Events"), h("dd", {}, formatNumber(item.events)),
            h("dt", {}, "Popularity"), h("dd", {}, formatNumber(item.popularity)))),
        h("div", { class: "grid" }, await itemActivity(itemId).catch((error) => [card("Popularity over time", { id: "item-history-card" },
          empty(error.message))]), card("Similar items", { id: "similar-card", wide: true }, recommendationList(similar.items))));
    } catch (error) {
      if (stopped) return;
      fill(shell, h("div", { class: "page-head" }, h("h1", {}, itemId)), empty(error.status === 404 ? "No such item." : error.message));
    }
    ready();
  })();
  return () => { stopped = true; };
}

// -- search --------------------------------------------------------------------------------

function setupSearch() {
  const form = document.getElementById("search");
  const input = document.getElementById("search-input");
  const results = document.getElementById("search-results");
  let timer = null;
  let first = null;
  const close = () => { results.hidden = true; };
  const run = async () => {
    const q = input.value.trim();
    if (!q) { close(); return; }
    try {
      const found = await api(`/dashboard/api/search?q=${enc(q)}&limit=8`);
      if (input.value.trim() !== q) return;  // a newer query is on its way
      const link = (href, text, note) => h("a", { href, "data-link": true, class: "result" }, h("span", {}, text), h("span", { class: "muted" }, note));
      const users = found.users.map((u) => link(userHref(u.user_id), u.user_id, `${u.event_count} events`));
      const items = found.items.map((i) => link(itemHref(i.item_id), i.title || i.item_id, i.category || i.item_id));
      first = [...users, ...items][0]?.getAttribute("href") || null;
      fill(results,
        users.length ? [h("div", { class: "group" }, "Users"), users] : null,
        items.length ? [h("div", { class: "group" }, "Items"), items] : null,
        !users.length && !items.length ? h("div", { class: "none" }, "No match") : null);
      results.hidden = false;
    } catch (error) {
      fill(results, h("div", { class: "none" }, error.message));
      results.hidden = false;
    }
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 150); });
  input.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  form.addEventListener("submit", (e) => { e.preventDefault(); if (first) { navigate(first); close(); } });
  results.addEventListener("click", () => close());
  document.addEventListener("click", (e) => { if (!form.contains(e.target)) close(); });
}

// -- routing -------------------------------------------------------------------------------

function route() {
  stopPage();
  delete view.dataset.ready;
  const path = location.pathname.replace(/\/+$/, "");
  const user = path.match(/^\/dashboard\/users\/([^/]+)$/);
  const item = path.match(/^\/dashboard\/items\/([^/]+)$/);
  const named = path.match(/^\/dashboard\/([a-z]+)$/);
  const list = named && PAGES[named[1]] ? named[1] : null;
  const current = user ? "users" : item ? "items" : list || "overview";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === current));
  view.dataset.page = user ? "user" : item ? "item" : current;
  if (user) stopPage = renderUser(decodeURIComponent(user[1]));
  else if (item) stopPage = renderItem(decodeURIComponent(item[1]));
  else if (list) stopPage = PAGES[list]();
  else stopPage = renderOverview();
}

/** Show the evaluation report link in the top bar when a report exists. */
async function showReportLink() {
  try {
    const { evaluation } = await api("/dashboard/api/overview?window=10&top=1");
    const link = document.getElementById("report-link");
    if (evaluation.report_url && link) { link.href = appPath(evaluation.report_url); link.hidden = false; }
  } catch { /* the overview page reports connection problems itself */ }
}

/** The app switch: every app the server lists (GET /apps needs the server's key; without it
 * the switch shows the current app alone), and the app's own links (metrics). */
async function showApps() {
  const select = document.getElementById("app-select");
  const shown = currentApp();
  document.querySelector('.nav a[href="/metrics"]')?.setAttribute("href", appPath("/metrics"));
  if (!select) return;
  let names = [shown];
  try {  // only the server's admin key may list apps: ask what the key may do first (a public route)
    if ((await api("/dashboard/api/session", { server: true })).role === "admin") {
      names = (await api("/apps", { server: true })).apps.map((a) => a.app);
      if (!names.includes(shown)) names.push(shown);
    }
  } catch { /* the server cannot say: this app only */ }
  fill(select, names.map((name) => h("option", { value: name, selected: name === shown }, name)));
  select.addEventListener("change", () => chooseApp(select.value));
}

function navigate(href) {
  history.pushState({}, "", href);
  route();
  window.scrollTo(0, 0);
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);
setupSearch();
whenKeyChanges(() => { route(); showReportLink(); });
showSignOut();
showApps();
route();
showReportLink();
