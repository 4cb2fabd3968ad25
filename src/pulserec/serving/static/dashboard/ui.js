// Shared pieces of the dashboard's pages: DOM building, the API with its sign-in, formatting.

import { colour } from "./charts.js";

export const view = document.getElementById("view");

// -- helpers -------------------------------------------------------------------------------

/** A DOM element; strings become text nodes (never HTML), so ids and titles are always escaped. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
  }
}

// -- sign-in -------------------------------------------------------------------------------
// Once the server has keys, the dashboard's data (profiles, search, overview) needs one. The
// key is kept in sessionStorage: this tab only, gone when it closes, never in a cookie that
// other sites could make the browser send. A 401 from any call opens the sign-in form.

// -- apps ----------------------------------------------------------------------------------
// The dashboard shows one app (tenant) at a time: `?app=NAME` or the app chosen in the top bar
// (kept in sessionStorage). Every API call of another app than `default` goes to /apps/NAME/...,
// and each app has its own keys, so the key is kept per app.

const APP_STORE = "pulserec.app";
const APP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function currentApp() {
  const asked = new URLSearchParams(location.search).get("app");
  if (asked && APP_NAME.test(asked)) {
    try { sessionStorage.setItem(APP_STORE, asked); } catch { /* storage off: the URL says it */ }
    return asked;
  }
  try { return sessionStorage.getItem(APP_STORE) || "default"; } catch { return "default"; }
}

export function chooseApp(name) {
  try { sessionStorage.setItem(APP_STORE, name); } catch { /* storage off */ }
  const url = new URL(location.href);
  url.searchParams.set("app", name);
  location.assign(url.pathname + url.search);
}

/** `path` of the default app's API as the current app serves it. */
export function appPath(path) {
  const app = currentApp();
  return app === "default" ? path : `/apps/${app}${path}`;
}

const KEY_STORE = "pulserec.api_key";
const keyStore = () => (currentApp() === "default" ? KEY_STORE : `${KEY_STORE}.${currentApp()}`);
let signIn = null;
let keyChanged = () => {};

/** What to do after signing in or out (the app re-renders the page). */
export function whenKeyChanges(callback) {
  keyChanged = callback;
}

export function storedKey() {
  try { return sessionStorage.getItem(keyStore()); } catch { return null; }
}

export function showSignIn(message) {
  if (signIn) { signIn.querySelector("#login-message").textContent = message; return; }
  const input = h("input", { id: "login-key", type: "password", required: true, autocomplete: "current-password",
    placeholder: "API key", "aria-label": "API key" });
  const form = h("form", { id: "login", class: "login card" },
    h("h2", {}, "Sign in"), h("p", { id: "login-message", class: "muted" }, message), input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    try { sessionStorage.setItem(keyStore(), input.value.trim()); } catch { /* storage off: nothing to keep */ }
    signIn.remove();
    signIn = null;
    showSignOut();
    keyChanged();
  });
  signIn = h("div", { class: "login-overlay", role: "dialog", "aria-modal": "true" }, form);
  document.body.append(signIn);
  input.focus();
}

export function showSignOut() {
  const nav = document.querySelector(".nav");
  if (!nav || !storedKey() || document.getElementById("logout")) return;
  nav.append(h("a", { id: "logout", href: "#", onclick: (e) => {
    e.preventDefault();
    sessionStorage.removeItem(keyStore());
    e.target.remove();
    keyChanged();
  } }, "Sign out"));
}

export async function api(path, { method = "GET", server = false } = {}) {
  const headers = { accept: "application/json" };
  const key = server ? sessionStorage.getItem(KEY_STORE) : storedKey();  // server: the apps list, the server's key
  if (key) headers["x-api-key"] = key;
  const response = await fetch(server ? path : appPath(path), { method, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
    if (response.status === 401 && !server) showSignIn(key ? `The key was refused: ${detail}` : "This server needs an API key (a read key is enough).");
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

export const enc = encodeURIComponent;
export const userHref = (id) => `/dashboard/users/${enc(id)}`;
export const itemHref = (id) => `/dashboard/items/${enc(id)}`;

export function ago(ts) {
  if (ts === null || ts === undefined) return "–";
  const seconds = Date.now() / 1000 - ts;
  if (seconds < 0) return "just now";
  for (const [size, unit] of [[86400 * 365, "y"], [86400, "d"], [3600, "h"], [60, "min"]]) {
    if (seconds >= size) return `${Math.floor(seconds / size)} ${unit} ago`;
  }
  return `${Math.floor(seconds)} s ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function card(title, { id, wide = false, subtitle } = {}, ...body) {
  return h("section", { class: `card${wide ? " wide" : ""}`, id },
    h("header", { class: "card-head" }, h("h2", {}, title), subtitle ? h("span", { class: "muted" }, subtitle) : null),
    h("div", { class: "card-body" }, ...body));
}

export function empty(text) {
  return h("div", { class: "empty" }, text);
}

export function fill(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

export function legend(names, colors = {}) {
  return h("div", { class: "legend" }, names.map((name) =>
    h("span", { class: "legend-item" }, h("i", { style: `background:${colors[name] || colour(name)}` }), name)));
}

export const QUANTILE_COLOURS = { p50: "#34c3a0", p90: "#5b8def", p99: "#ef5d7a" };

/** Mark the current page as rendered (tests and screenshots wait for this). */
export function ready() {
  view.dataset.ready = view.dataset.page;
}

export function chip(text, kind = "") {
  return h("span", { class: `chip ${kind}` }, text);
}
