// Dashboard page /dashboard/controls: the app's merchandising controls (issue 15): named filters,
// promotions with the impressions, clicks and CTR of their slots, and exploration's outcomes.

import { formatNumber } from "./charts.js";
import { api, card, chip, empty, fill, h, ready, view } from "./ui.js";

const percent = (x) => `${(100 * x).toFixed(1)}%`;
const when = (t) => (t ? new Date(t * 1000).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "–");

function table(id, columns, rows) {
  return h("table", { class: "table list", id },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))), h("tbody", {}, rows));
}

function filtersTable(filters) {
  if (!filters.length) return empty("No named filters. PUT /filters/{name} with {\"expression\": \"...\"}; use them with ?filter=NAME.");
  return table("filters-table", ["Name", "Expression"], filters.map((f) => h("tr", { "data-filter": f.name },
    h("td", {}, h("code", {}, f.name)), h("td", {}, h("code", { class: "clip", title: f.expression }, f.expression)))));
}

function promotionsTable(promotions) {
  if (!promotions.length) return empty("No promotions. PUT /promotions/{name} with a filter and a share or a boost.");
  return table("promotions-table", ["Name", "Filter", "Effect", "Window", "State", "Impressions", "Clicks", "CTR"],
    promotions.map((p) => h("tr", { "data-promotion": p.name },
      h("td", {}, h("code", {}, p.name)),
      h("td", {}, h("code", { class: "clip", title: p.filter }, p.filter)),
      h("td", {}, p.share != null ? `${percent(p.share)} of each slate` : `score × ${p.boost}`),
      h("td", { class: "num" }, `${when(p.starts)} → ${when(p.ends)}`),
      h("td", {}, p.running ? chip("running", "segment") : chip("not running", "warn")),
      h("td", { class: "num" }, formatNumber(p.impressions)),
      h("td", { class: "num" }, formatNumber(p.clicks)),
      h("td", { class: "num ctr" }, percent(p.ctr)))));
}

function explorationTable(rows) {
  if (!rows.length) return empty("No explored slot shown yet (?exploration=0..1, or the setting exploration_defaults).");
  return table("exploration-table", ["Strategy", "Explored slots shown", "Clicks", "CTR"], rows.map((r) => h("tr", { "data-strategy": r.strategy },
    h("td", {}, h("code", {}, r.strategy)), h("td", { class: "num" }, formatNumber(r.impressions)),
    h("td", { class: "num" }, formatNumber(r.clicks)), h("td", { class: "num ctr" }, percent(r.ctr)))));
}

export function renderControls() {
  const filters = h("div", { id: "filters" });
  const promotions = h("div", { id: "promotions" });
  const exploration = h("div", { id: "exploration" });
  fill(view, h("div", {}, h("div", { class: "page controls" }, h("div", { class: "page-head" }, h("h1", {}, "Controls"),
    h("span", { class: "muted" }, "filters, promotions and exploration of this app"))),
  h("div", { class: "grid" },
    card("Promotions", { id: "promotions-card", wide: true, subtitle: "slots shown and clicked (an engagement on the promoted item)" }, promotions),
    card("Named filters", { id: "filters-card", wide: true, subtitle: "?filter=NAME on every ranking route" }, filters),
    card("Exploration", { id: "exploration-card", wide: true, subtitle: "slots given to items with little exposure" }, exploration))));
  (async () => {
    const shown = [[filters, "/filters", (d) => filtersTable(d.filters)], [promotions, "/promotions", (d) => promotionsTable(d.promotions)],
      [exploration, "/feedback", (d) => explorationTable(d.exploration)]];
    await Promise.all(shown.map(async ([box, path, draw]) => {
      try {
        fill(box, draw(await api(path)));
      } catch (error) {
        fill(box, empty(error.message));
      }
    }));
    ready();
  })();
  return () => {};
}
