// Tiny SVG charts for the pulserec dashboard: no dependencies, no network.
// Every chart returns an <svg> element; bars are <rect class="bar">, so tests can count them.

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function titled(node, text) {
  node.append(s("title", {}, text));
  return node;
}

const PALETTE = {
  view: "#5b8def", click: "#34c3a0", search: "#a78bfa", add_to_cart: "#f5a524",
  purchase: "#ef5d7a", rating: "#22b8cf", like: "#f472b6", share: "#94a3b8",
};
const EXTRA = ["#60a5fa", "#4ade80", "#facc15", "#fb923c", "#c084fc", "#2dd4bf"];

/** A stable colour for a series name (event types have fixed ones). */
export function colour(name) {
  if (PALETTE[name]) return PALETTE[name];
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA[hash % EXTRA.length];
}

/** A "nice" axis maximum at or above `value` (1, 2, 5 x 10^k). */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(digits) + "B";
  if (abs >= 1e6) return (value / 1e6).toFixed(digits) + "M";
  if (abs >= 1e4) return (value / 1e3).toFixed(digits) + "k";
  if (Number.isInteger(value)) return value.toLocaleString("en");
  if (abs < 1) return value.toFixed(Math.max(digits, 3));
  return value.toFixed(abs < 10 ? 2 : digits);
}

/**
 * Stacked columns, one per point: points = [{label, values: {series: number}}], series = names.
 * Each column is a <g class="column"> holding one rect.bar per non-zero series value.
 */
export function stackedColumns(points, series, { width = 640, height = 200, unit = "" } = {}) {
  const pad = { left: 40, right: 8, top: 10, bottom: 22 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const totals = points.map((p) => series.reduce((sum, name) => sum + (p.values[name] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const slot = innerW / Math.max(points.length, 1);
  const barW = Math.max(1, slot * 0.78);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart columns", role: "img" });
  for (const frac of [0, 0.5, 1]) {
    const y = pad.top + innerH * (1 - frac);
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, formatNumber(top * frac, 0)));
  }
  points.forEach((point, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const column = titled(s("g", { class: "column" }), `${point.label}: ${formatNumber(totals[i])}${unit}`);
    let base = pad.top + innerH;
    for (const name of series) {
      const value = point.values[name] || 0;
      if (!value) continue;
      const h = (value / top) * innerH;
      base -= h;
      column.append(titled(s("rect", { x, y: base, width: barW, height: h, rx: 1.5, fill: colour(name), class: "bar" }),
        `${name}: ${formatNumber(value)}${unit}`));
    }
    svg.append(column);
  });
  if (points.length) {
    svg.append(s("text", { x: pad.left, y: height - 4, class: "axis" }, points[0].label));
    svg.append(s("text", { x: width - pad.right, y: height - 4, class: "axis", "text-anchor": "end" }, points[points.length - 1].label));
  }
  return svg;
}

/**
 * Horizontal bars: rows = [{label, value, note?, href?}]. One rect.bar per row, the track behind it.
 */
export function horizontalBars(rows, { width = 420, rowHeight = 26, labelWidth = 130, unit = "", color = "#5b8def" } = {}) {
  const height = Math.max(rowHeight * rows.length, rowHeight);
  const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
  const valueWidth = 64;
  const trackW = width - labelWidth - valueWidth;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart hbars", role: "img" });
  rows.forEach((row, i) => {
    const y = i * rowHeight;
    const label = titled(s("text", { x: labelWidth - 8, y: y + rowHeight / 2 + 4, class: "label", "text-anchor": "end" },
      truncate(row.label, 18)), String(row.label));  // the full title on hover
    svg.append(row.href ? s("a", { href: row.href }, label) : label);
    svg.append(s("rect", { x: labelWidth, y: y + 5, width: trackW, height: rowHeight - 10, rx: 4, class: "track" }));
    const w = Math.max(2, (row.value / max) * trackW);
    svg.append(titled(s("rect", { x: labelWidth, y: y + 5, width: w, height: rowHeight - 10, rx: 4, fill: row.color || color, class: "bar" }),
      `${row.label}: ${formatNumber(row.value)}${unit}${row.note ? " – " + row.note : ""}`));
    svg.append(s("text", { x: width - 4, y: y + rowHeight / 2 + 4, class: "value", "text-anchor": "end" }, formatNumber(row.value) + unit));
  });
  return svg;
}

/** Grouped vertical bars: groups = [{label, values: {key: number}}], keys = bar names (e.g. p50, p90, p99). */
export function groupedBars(groups, keys, { width = 420, height = 190, unit = "", colors = {} } = {}) {
  const pad = { left: 40, right: 8, top: 16, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const top = niceMax(Math.max(0, ...groups.flatMap((g) => keys.map((k) => g.values[k] || 0))));
  const slot = innerW / Math.max(groups.length, 1);
  const barW = Math.min(28, (slot * 0.8) / keys.length);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart grouped", role: "img" });
  for (const frac of [0, 0.5, 1]) {
    const y = pad.top + innerH * (1 - frac);
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, formatNumber(top * frac, 1)));
  }
  groups.forEach((group, i) => {
    const start = pad.left + i * slot + (slot - barW * keys.length) / 2;
    keys.forEach((key, j) => {
      const value = group.values[key] || 0;
      const h = (value / top) * innerH;
      const x = start + j * barW;
      svg.append(titled(s("rect", { x: x + 1, y: pad.top + innerH - h, width: barW - 2, height: h, rx: 2,
        fill: colors[key] || colour(key), class: "bar" }), `${group.label} ${key}: ${formatNumber(value)}${unit}`));
    });
    svg.append(titled(s("text", { x: pad.left + i * slot + slot / 2, y: height - 6, class: "axis", "text-anchor": "middle" },
      truncate(group.label, 14)), String(group.label)));
  });
  return svg;
}

/**
 * Lines, one per series over shared points: points = [{label, values: {series: number | null}}].
 * A null value (nothing to measure, e.g. no impressions that hour) breaks the line there. Each
 * series is one path.line with data-series; `percent` formats the axis as percentages.
 */
export function lines(points, series, { width = 640, height = 200, percent = false } = {}) {
  const pad = { left: 44, right: 8, top: 10, bottom: 22 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const values = points.flatMap((p) => series.map((name) => p.values[name])).filter((v) => v !== null && v !== undefined);
  const top = niceMax(Math.max(0, ...values));
  const format = (v) => (percent ? `${(v * 100).toFixed(v * 100 < 10 ? 1 : 0)}%` : formatNumber(v, 0));
  const x = (i) => pad.left + (points.length > 1 ? (i / (points.length - 1)) * innerW : innerW / 2);
  const y = (v) => pad.top + innerH * (1 - v / top);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart lines", role: "img" });
  for (const frac of [0, 0.5, 1]) {
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(top * frac), y2: y(top * frac), class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y(top * frac) + 4, class: "axis", "text-anchor": "end" }, format(top * frac)));
  }
  for (const name of series) {
    let d = "";
    let pen = "M";
    points.forEach((p, i) => {
      const v = p.values[name];
      if (v === null || v === undefined) { pen = "M"; return; }
      d += `${pen}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
    });
    svg.append(titled(s("path", { d: d.trim(), class: "line", "data-series": name, stroke: colour(name), fill: "none",
      "stroke-width": 2, "stroke-linejoin": "round" }), name));
    points.forEach((p, i) => {  // a dot per measured point: a lone hour with impressions has no line
      const v = p.values[name];
      if (v === null || v === undefined) return;
      svg.append(titled(s("circle", { cx: x(i), cy: y(v), r: 2.5, fill: colour(name), class: "dot" }), `${p.label} ${name}: ${format(v)}`));
    });
  }
  if (points.length) {
    svg.append(s("text", { x: pad.left, y: height - 4, class: "axis" }, points[0].label));
    svg.append(s("text", { x: width - pad.right, y: height - 4, class: "axis", "text-anchor": "end" }, points[points.length - 1].label));
  }
  return svg;
}

/** A ring showing `share` (0-1) with a caption in the middle. */
export function donut(share, caption, { size = 150, stroke = 16, color = "#34c3a0" } = {}) {
  const r = (size - stroke) / 2;
  const c = 2 * Math.PI * r;
  const value = Math.min(Math.max(share || 0, 0), 1);
  const svg = s("svg", { viewBox: `0 0 ${size} ${size}`, class: "chart donut", role: "img", width: size, height: size });
  svg.append(s("circle", { cx: size / 2, cy: size / 2, r, class: "track", "stroke-width": stroke, fill: "none" }));
  svg.append(s("circle", {
    cx: size / 2, cy: size / 2, r, fill: "none", stroke: color, "stroke-width": stroke, class: "arc",
    "stroke-dasharray": `${c * value} ${c}`, transform: `rotate(-90 ${size / 2} ${size / 2})`, "stroke-linecap": "round",
  }));
  svg.append(s("text", { x: size / 2, y: size / 2 + 2, class: "donut-value", "text-anchor": "middle" }, `${(value * 100).toFixed(1)}%`));
  svg.append(s("text", { x: size / 2, y: size / 2 + 22, class: "donut-caption", "text-anchor": "middle" }, caption));
  return svg;
}

function truncate(text, n) {
  const value = String(text ?? "");
  return value.length > n ? value.slice(0, n - 1) + "…" : value;
}
