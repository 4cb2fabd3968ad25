// Dashboard pages over the stored log and the server's jobs: history, user and item lists,
// tasks (trainings and rebuilds, with a retrain button for admin keys) and the configuration.

import { formatNumber, lines, stackedColumns } from "./charts.js";
import { ago, api, card, chip, duration, empty, enc, fill, h, itemHref, legend, ready, userHref, view } from "./ui.js";

const TASKS_REFRESH_MS = 2000;

function page(name, title, ...body) {
  return h("div", { class: `page ${name}` }, h("div", { class: "page-head" }, h("h1", {}, title), ...body));
}

/** A cell whose text may be cut by CSS: the full text is its tooltip. */
function clipped(text, href) {
  const value = text ?? "–";
  return href ? h("a", { href, "data-link": true, class: "clip", title: value }, value) : h("span", { class: "clip", title: value }, value);
}

// -- history -------------------------------------------------------------------------------

const RANGES = { "1": ["1 day", "hour"], "7": ["7 days", "hour"], "30": ["30 days", "day"], "90": ["90 days", "day"] };

function stamp(t, bucket) {
  const date = new Date(t * 1000);
  const day = date.toLocaleDateString("en-GB", { day: "2-digit", month: "short", year: "numeric" });
  return bucket === "hour" ? `${day} ${date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })}` : day;
}

export function renderHistory() {
  const select = h("select", { id: "range", "aria-label": "Range" },
    Object.entries(RANGES).map(([days, [label, bucket]]) => h("option", { value: days, selected: days === "7" }, `${label} (per ${bucket})`)));
  const shell = page("history", "History", h("label", { class: "picker" }, "Range ", select),
    h("span", { class: "muted", id: "history-range" }));
  const charts = h("div", { class: "grid" },
    card("Events by type", { id: "history-events-card", wide: true }, h("div", { id: "history-events" }), h("div", { id: "history-legend" })),
    card("Active users", { id: "history-users-card", subtitle: "distinct users and sessions" }, h("div", { id: "history-users" })),
    card("New items", { id: "history-items-card", subtitle: "added, or first seen in an event" }, h("div", { id: "history-items" })),
    card("CTR by strategy", { id: "history-ctr-card", subtitle: "clicked impressions" }, h("div", { id: "history-ctr" })),
    card("Conversion by strategy", { id: "history-conversion-card", subtitle: "led to a purchase" },
      h("div", { id: "history-conversion" }), h("div", { id: "history-strategies" })));
  fill(view, h("div", {}, shell, charts));
  let stopped = false;
  const load = async () => {
    const [, bucket] = RANGES[select.value];
    delete view.dataset.ready;
    try {
      const data = await api(`/dashboard/api/history?days=${select.value}&bucket=${bucket}`);
      if (!stopped) showHistory(data);
    } catch (error) {
      fill(document.getElementById("history-events"), empty(error.message));
    }
    ready();
  };
  select.addEventListener("change", load);
  load();
  return () => { stopped = true; };
}

function showHistory(data) {
  const label = (p) => stamp(p.t, data.bucket);
  fill(document.getElementById("history-range"), `${stamp(data.since, data.bucket)} – ${stamp(data.until, data.bucket)}`);
  const total = data.series.reduce((sum, p) => sum + p.events, 0);
  fill(document.getElementById("history-events"), total
    ? stackedColumns(data.series.map((p) => ({ label: label(p), values: p.by_type })), data.types, { width: 900, height: 220 })
    : empty("No events in this range."));
  fill(document.getElementById("history-legend"), data.types.length ? legend(data.types) : null);
  const single = (key, name) => stackedColumns(data.series.map((p) => ({ label: label(p), values: { [name]: p[key] } })), [name],
    { width: 440, height: 180 });
  fill(document.getElementById("history-users"), single("active_users", "users"));
  fill(document.getElementById("history-items"), data.series.some((p) => p.new_items) ? single("new_items", "new items") : empty("No new items in this range."));
  const rate = (key) => data.series.map((p) => ({ label: label(p),
    values: Object.fromEntries(data.strategies.map((s) => [s, p.strategies[s] ? p.strategies[s][key] : null])) }));
  const none = empty("No impressions in this range (POST /impressions records them).");
  fill(document.getElementById("history-ctr"), data.strategies.length ? lines(rate("ctr"), data.strategies, { width: 440, height: 180, percent: true }) : none);
  fill(document.getElementById("history-conversion"), data.strategies.length
    ? lines(rate("conversion_rate"), data.strategies, { width: 440, height: 180, percent: true }) : none.cloneNode(true));
  fill(document.getElementById("history-strategies"), data.strategies.length ? legend(data.strategies) : null);
}

// -- users and items: paginated, sortable tables ---------------------------------------------

const USER_COLUMNS = [
  { key: "user_id", label: "User", cell: (r, data) => clipped(r.user_id, data.pseudonymous ? null : userHref(r.user_id)) },
  { key: "events", label: "Events", num: true, cell: (r) => formatNumber(r.events) },
  { key: "first_seen", label: "First seen", num: true, cell: (r) => ago(r.first_seen) },
  { key: "last_seen", label: "Last seen", num: true, cell: (r) => ago(r.last_seen) },
];
const ITEM_COLUMNS = [
  { key: "title", label: "Title", cell: (r) => clipped(r.title || r.item_id, itemHref(r.item_id)) },
  { key: "item_id", label: "Id", cell: (r) => clipped(r.item_id) },
  { key: "category", label: "Category", cell: (r) => (r.catalogued ? r.category ?? "–" : chip("not in catalogue", "warn")) },
  { key: "price", label: "Price", num: true, cell: (r) => (r.price === null ? "–" : formatNumber(r.price)) },
  { key: "events", label: "Events", num: true, cell: (r) => formatNumber(r.events) },
  { key: "last_seen", label: "Last event", num: true, cell: (r) => ago(r.last_seen) },
];

export const renderUsers = () => sortableList("users", "Users", "/dashboard/api/users", USER_COLUMNS);
export const renderItems = () => sortableList("items", "Items", "/dashboard/api/items", ITEM_COLUMNS);

function sortableList(name, title, path, columns) {
  const state = { sort: "events", order: "desc", page: 1, perPage: 25 };
  const table = h("div", { id: `${name}-table` });
  const pager = h("div", { class: "pager", id: `${name}-pager` });
  fill(view, page(name, title, h("span", { class: "muted", id: `${name}-total` })), card(title, { wide: true }, table, pager));
  let stopped = false;
  const load = async () => {
    delete view.dataset.ready;
    const query = new URLSearchParams({ sort: state.sort, order: state.order, page: state.page, per_page: state.perPage });
    try {
      const data = await api(`${path}?${query}`);
      if (stopped) return;
      showList(name, data, columns, state, table, pager, load);
    } catch (error) {
      fill(table, empty(error.message));
    }
    ready();
  };
  load();
  return () => { stopped = true; };
}

function showList(name, data, columns, state, table, pager, load) {
  const sortBy = (key) => {
    state.order = state.sort === key && state.order === "desc" ? "asc" : "desc";
    state.sort = key;
    state.page = 1;
    load();
  };
  const arrow = (key) => (state.sort === key ? (state.order === "desc" ? " ▼" : " ▲") : "");
  fill(document.getElementById(`${name}-total`), `${formatNumber(data.total)} in all`,
    data.pseudonymous ? " · ids are pseudonyms (pseudonymize_users)" : "");
  fill(table, data.rows.length ? h("table", { class: "table list" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null },
      h("button", { class: "sort", "data-sort": c.key, "aria-sort": state.sort === c.key ? `${state.order}ending` : null,
        onclick: () => sortBy(c.key) }, c.label + arrow(c.key)))))),
    h("tbody", {}, data.rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r, data)))))))
    : empty("Nothing here yet."));
  const last = Math.max(1, Math.ceil(data.total / state.perPage));
  const go = (to) => { state.page = to; load(); };
  const from = data.total ? data.offset + 1 : 0;
  fill(pager,
    h("button", { id: `${name}-prev`, disabled: state.page <= 1, onclick: () => go(state.page - 1) }, "‹ Previous"),
    h("span", { class: "muted", id: `${name}-page` }, `${from}–${data.offset + data.rows.length} of ${formatNumber(data.total)} · page ${state.page} of ${last}`),
    h("button", { id: `${name}-next`, disabled: state.page >= last, onclick: () => go(state.page + 1) }, "Next ›"));
}

// -- tasks ---------------------------------------------------------------------------------

export function renderTasks() {
  const jobs = h("div", { id: "jobs" });
  const controls = h("div", { id: "retrain" });
  fill(view, h("div", {}, page("tasks", "Tasks", h("span", { class: "muted", id: "jobs-limit" })),
    h("div", { class: "grid" },
      card("Trainings and rebuilds", { id: "jobs-card", wide: true, subtitle: "running first, then the latest finished" }, jobs),
      card("Start a task", { id: "retrain-card", subtitle: "needs an admin key" }, controls))));
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      const data = await api("/jobs");
      fill(jobs, jobsTable(data.jobs));
      fill(document.getElementById("jobs-limit"), `at most ${data.max_jobs} at once`);
    } catch (error) {
      fill(jobs, empty(error.message));
    }
    ready();
    if (!stopped) timer = setTimeout(tick, TASKS_REFRESH_MS);
  };
  retrainControls(controls, () => { clearTimeout(timer); tick(); });
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function jobsTable(jobs) {
  if (!jobs.length) return empty("No training or rebuild has run since the server started.");
  const kinds = { running: "", succeeded: "segment", failed: "warn" };
  const outcome = (j) => (j.error ? j.error : Array.isArray(j.result) ? j.result.join("; ") : j.result ? JSON.stringify(j.result) : j.note);
  return h("table", { class: "table list", id: "jobs-table" },
    h("thead", {}, h("tr", {}, ["Task", "State", "Progress", "Started", "Duration", "Result"].map((c) => h("th", {}, c)))),
    h("tbody", {}, jobs.map((j) => h("tr", { "data-job": j.id, "data-state": j.state },
      h("td", {}, h("b", {}, j.kind), " ", h("code", {}, j.target)),
      h("td", {}, chip(j.state, kinds[j.state])),
      h("td", {}, h("div", { class: "progress", title: j.note }, h("i", { style: `width:${Math.round(j.progress * 100)}%` })),
        h("span", { class: "muted" }, ` ${Math.round(j.progress * 100)}%`)),
      h("td", { class: "num" }, ago(j.started_at)),
      h("td", { class: "num" }, duration(j.duration_s)),
      h("td", {}, clipped(outcome(j)))))));
}

async function retrainControls(box, refresh) {
  let session;
  let models;
  try {
    [session, models] = await Promise.all([api("/dashboard/api/session"), api("/models")]);
  } catch (error) {
    fill(box, empty(error.message));
    return;
  }
  if (session.role !== "admin") {
    fill(box, h("p", { class: "muted", id: "retrain-locked" }, "Retraining needs an admin key (api_keys); this key can only read."));
    return;
  }
  const select = h("select", { id: "retrain-model", "aria-label": "Model" }, models.trainable.map((m) => h("option", { value: m, selected: m === "als" }, m)));
  const message = h("p", { class: "muted", id: "retrain-message" });
  const start = async (path, what) => {
    try {
      const answer = await api(path, { method: "POST" });
      fill(message, `${what} started: job `, h("code", {}, answer.job_id));
    } catch (error) {
      fill(message, h("span", { class: "chip warn" }, `HTTP ${error.status}`), " ", error.message.replace(/^HTTP \d+: /, ""));
    }
    refresh();
  };
  fill(box, h("div", { class: "picker" }, "Model ", select,
    h("button", { id: "retrain-button", onclick: () => start(`/models/${enc(select.value)}/train`, `Training of ${select.value}`) }, "Retrain")),
  h("div", { class: "picker" }, h("button", { id: "rebuild-button", onclick: () => start("/admin/rebuild", "Rebuild") }, "Rebuild the online state")),
  message);
}

// -- configuration -------------------------------------------------------------------------

export function renderConfig() {
  const body = h("div", { id: "config" });
  fill(view, h("div", {}, page("config", "Configuration", h("span", { class: "muted" }, "effective settings; secrets redacted")),
    card("Settings", { id: "config-card", wide: true, subtitle: "from defaults, <data-dir>/pulserec.toml and PULSEREC_* variables" }, body)));
  (async () => {
    try {
      const { settings } = await api("/dashboard/api/config");
      fill(body, h("table", { class: "table list", id: "config-table" },
        h("thead", {}, h("tr", {}, ["Setting", "Value", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, settings.map((r) => h("tr", { class: r.secret ? "secret" : null, "data-setting": r.name },
          h("td", {}, h("code", {}, r.name)),
          h("td", {}, clipped(typeof r.value === "string" ? r.value : JSON.stringify(r.value))),
          h("td", {}, r.secret ? chip("secret", "warn") : r.default ? h("span", { class: "muted" }, "default") : chip("set", "segment")))))));
    } catch (error) {
      fill(body, empty(error.status === 403 ? "The configuration needs an admin key." : error.message));
    }
    ready();
  })();
  return () => {};
}

// -- item activity (on the item page) ------------------------------------------------------

export async function itemActivity(itemId) {
  const data = await api(`/dashboard/api/items/${enc(itemId)}/activity?bucket=day&recent=15`);
  const chart = data.series.length
    ? [stackedColumns(data.series.map((p) => ({ label: stamp(p.t, "day"), values: p.by_type })), data.types, { width: 900, height: 200 }),
      legend(data.types)]
    : empty("No events for this item yet.");
  const who = data.recent.length
    ? h("ol", { class: "timeline", id: "interactors" }, data.recent.map((r) => h("li", {}, chip(r.type, "type"),
      r.user_id ? h("a", { href: userHref(r.user_id), "data-link": true }, r.user_id) : h("span", { class: "muted" }, `session ${r.session_id}`),
      h("span", { class: "muted when" }, ago(r.ts)))))
    : empty("Nobody yet.");
  return [card("Popularity over time", { id: "item-history-card", wide: true, subtitle: "events per day, by type" }, h("div", { id: "item-history" }, chart)),
    card("Recent interactors", { id: "interactors-card", subtitle: `${data.recent.length} latest` }, who)];
}
