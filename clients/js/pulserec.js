/*! pulserec.js - behaviour capture and recommendation widgets for pulserec. Apache-2.0.
 *
 * One script tag and a publishable key:
 *   <script src="https://reco.example.com/sdk/pulserec.js" data-key="pk_live_..." async></script>
 *
 * Captures item page views with their visible time (data-pulserec-item), clicks on recommended
 * items (attributed to their recommendation_id), searches (form submits) and pulserec.track();
 * renders data-pulserec-widget="recommendations|similar|trending|search" containers and reports
 * what they showed. Events go in batches by navigator.sendBeacon (fetch keepalive otherwise); a batch
 * is kept until a send is confirmed and sent again on the next page (the server drops copies by
 * event_id), so a page's last events are never lost to a beacon that was not delivered.
 * No dependencies, no build step, no cookies: the anonymous session id lives in localStorage.
 * API: docs/integration.md.
 */
(function (window, document) {
  "use strict";
  if (window.pulserec && window.pulserec.version) return; // loaded twice: keep the first

  var VERSION = "1.0.0";
  var TYPES = ["view", "click", "search", "add_to_cart", "purchase", "like", "share"];
  var WIDGETS = ["recommendations", "similar", "trending", "search"];
  var FLUSH_MS = 1000;          // events wait at most this long for company in a batch
  var BATCH_MAX = 50;           // events per batch (a beacon carries at most 64 KiB)
  var PENDING_MAX = 20;         // unconfirmed batches kept for a later send
  var PENDING_TTL_MS = 864e5;   // a day: older unconfirmed batches are given up
  var MAX_DWELL_S = 86400;      // the server's bound on dwell_seconds
  var STORE = "pulserec.";      // localStorage prefix

  var script = document.currentScript;
  var config = {
    key: attr(script, "data-key"),
    // data-api may be relative to the page ("/apps/shop"); the default is the script's origin.
    api: attr(script, "data-api") ? new URL(attr(script, "data-api"), location.href).href.replace(/\/$/, "")
      : (script && script.src ? new URL(script.src, location.href).origin : location.origin),
    itemUrl: attr(script, "data-item-url") || "",
    n: parseInt(attr(script, "data-n") || "6", 10) || 6,
    device: /Mobi|Android/i.test(navigator.userAgent) ? "mobile" : "desktop"
  };
  var PROPS = ["item_id", "value", "query", "recommendation_id", "context"]; // what track() may set
  var queue = [], impressions = [], login = null, timer = null, counter = 0, widgetTimer = null, seen = {};
  var page = { items: [], since: null, from: null };

  function attr(el, name) { return el ? el.getAttribute(name) : null; }

  function store(name, value) {
    try {
      if (value === undefined) return window.localStorage.getItem(STORE + name);
      if (value === null) window.localStorage.removeItem(STORE + name);
      else window.localStorage.setItem(STORE + name, value);
    } catch (e) { /* storage off (private mode, quota): the session lasts as long as the page */ }
    return null;
  }

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  var sessionId = store("session") || "s-" + randomId();
  store("session", sessionId);
  var userId = store("user");

  function url(path, params) {
    var u = new URL(config.api + path);
    if (config.key) u.searchParams.set("key", config.key);
    Object.keys(params || {}).forEach(function (k) { if (params[k] != null) u.searchParams.set(k, params[k]); });
    return u.toString();
  }

  // -- events ---------------------------------------------------------------------------------
  function enqueue(type, props) {
    var event = { event_id: sessionId + "." + Date.now().toString(36) + "." + (counter++).toString(36),
                  session_id: sessionId, type: type, context: { device: config.device } };
    if (userId) event.user_id = userId;
    Object.keys(props || {}).forEach(function (k) { if (props[k] != null) event[k] = props[k]; });
    queue.push(event);
    if (queue.length >= BATCH_MAX) flush(false);
    else if (!timer) timer = setTimeout(function () { flush(false); }, FLUSH_MS);
    return event.event_id;
  }

  function pending(batches) {
    if (batches === undefined) {
      try { return JSON.parse(store("pending") || "[]"); } catch (e) { return []; }
    }
    store("pending", batches.length ? JSON.stringify(batches.slice(-PENDING_MAX)) : null);
    return batches;
  }

  function confirm(id) { pending(pending().filter(function (b) { return b.id !== id; })); }

  // Sends what is queued. `leaving`: the page is hiding, so a beacon (which outlives the page);
  // otherwise fetch, whose answer confirms the batch. Returns a promise of the send.
  function flush(leaving) {
    clearTimeout(timer); timer = null;
    if (!queue.length && !impressions.length && !login) return Promise.resolve(null);
    var body = { events: queue.splice(0, BATCH_MAX), impressions: impressions.splice(0, 20) };
    if (login) { body.identify = login; login = null; }
    var batch = { id: randomId(), at: Date.now(), body: body };
    if (queue.length || impressions.length) timer = setTimeout(function () { flush(false); }, 0);
    pending(pending().concat([batch]));
    var text = JSON.stringify(body);
    if (leaving && navigator.sendBeacon && navigator.sendBeacon(url("/sdk/events"), text)) return Promise.resolve(null);
    // What the visitor just did changes what they should see: widgets are drawn again once it is stored.
    return send(batch, text, leaving, body.events.length > 0 || !!body.identify);
  }

  function send(batch, text, leaving, redraw) {
    // text/plain: a "simple" request, so no CORS preflight; the server parses the JSON anyway.
    return fetch(url("/sdk/events"), { method: "POST", body: text, keepalive: !!leaving, credentials: "omit",
                                       headers: { "Content-Type": "text/plain;charset=UTF-8" } })
      .then(function (response) {
        if (response.status === 429 || response.status >= 500) {
          var wait = parseFloat(response.headers.get("Retry-After") || "2");
          setTimeout(function () { resend(); }, Math.min(wait, 60) * 1000);
          return null;
        }
        confirm(batch.id); // sent, or refused for good (4xx): either way never again
        if (!response.ok) return response.json().then(function (b) { warn("events refused: " + b.detail); return null; });
        if (redraw) scheduleRefresh();
        return response.json();
      }, function () { return null; }); // offline: kept, sent again with the next page or batch
  }

  function resend() {
    var now = Date.now();
    var live = pending().filter(function (b) { return now - b.at < PENDING_TTL_MS; });
    pending(live);
    return Promise.all(live.map(function (b) { return send(b, JSON.stringify(b.body), false); }));
  }

  function warn(message) { if (window.console) console.warn("pulserec: " + message); }

  // -- page views and dwell time ------------------------------------------------------------------
  function startStretch() { if (page.items.length && page.since === null) page.since = performance.now(); }

  function endStretch() {
    if (page.since === null) return;
    var dwell = Math.min(MAX_DWELL_S, Math.round((performance.now() - page.since) / 100) / 10);
    page.since = null;
    page.items.forEach(function (item) {
      var from = page.from && page.from.item === item ? page.from.rec : null;
      enqueue("view", { item_id: item, dwell_seconds: dwell, recommendation_id: from });
    });
  }

  function onHide() { endStretch(); flush(true); }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") onHide(); else startStretch();
  });
  window.addEventListener("pagehide", onHide);
  window.addEventListener("pageshow", function (e) { if (e.persisted) startStretch(); }); // back from the bfcache

  // -- clicks and searches ------------------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var tile = e.target && e.target.closest ? e.target.closest("[data-pulserec-rec]") : null;
    if (!tile) return;
    var item = attr(tile, "data-pulserec-item-id"), rec = attr(tile, "data-pulserec-rec");
    enqueue("click", { item_id: item, recommendation_id: rec });
    try { window.sessionStorage.setItem(STORE + "from", JSON.stringify({ item: item, rec: rec })); } catch (err) { /* off */ }
  }, true);

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var input = form && form.querySelector && form.querySelector("[data-pulserec-query], input[type=search], input[name=q]");
    if (!input || (attr(form, "data-pulserec-search") === "off")) return;
    var query = String(input.value || "").trim().slice(0, 512);
    if (query) enqueue("search", { query: query });
  }, true);

  // -- widgets ------------------------------------------------------------------------------------
  function widgetRequest(el) {
    var kind = attr(el, "data-pulserec-widget"), n = parseInt(attr(el, "data-pulserec-n") || "", 10) || config.n;
    var item = attr(el, "data-pulserec-item") || page.items[0] || null;
    var subject = userId ? "/users/" + encodeURIComponent(userId) : "/sessions/" + encodeURIComponent(sessionId);
    var filters = { n: n, category: attr(el, "data-pulserec-category") };
    if (kind === "search") { // the items matching a query, ranked for this visitor
      var q = attr(el, "data-pulserec-query");
      if (!q) return null;
      var who = userId ? { user_id: userId } : { session_id: sessionId };
      return { kind: kind, url: url("/search", { q: q, n: n, user_id: who.user_id, session_id: who.session_id }) };
    }
    if (kind === "similar") {
      if (!item) return null;
      return { kind: kind, item: item, url: url("/items/" + encodeURIComponent(item) + "/similar", filters) };
    }
    if (kind === "trending") { filters.strategy = "trending"; filters.exclude_seen = "false"; }
    if (page.items.length) filters.exclude = page.items.join(",");
    return { kind: kind, url: url(subject + "/recommendations", filters) };
  }

  function render(el) {
    var request = widgetRequest(el);
    if (!request) return Promise.resolve(null);
    if (WIDGETS.indexOf(request.kind) < 0) { warn("unknown widget " + request.kind); return Promise.resolve(null); }
    el.setAttribute("data-pulserec-state", "loading");
    return fetch(request.url, { credentials: "omit" }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.detail || response.status);
        // Similar items and search results get their recommendation id here (the server's
        // answers have none) and report their impressions under the widget's kind.
        var rec = body.recommendation_id || request.kind + "-" + randomId();
        draw(el, body.items || [], rec, body.recommendation_id ? body.strategy : request.kind);
        return body;
      });
    }).catch(function (error) {
      el.setAttribute("data-pulserec-state", "error");
      warn(request.kind + " widget: " + error.message);
      return null;
    });
  }

  function draw(el, items, rec, strategy) {
    var list = document.createElement("ol");
    list.className = "pulserec-list";
    var template = attr(el, "data-pulserec-href") || config.itemUrl;
    items.forEach(function (item) {
      var li = document.createElement("li"), link = document.createElement("a"), why = document.createElement("span");
      li.className = "pulserec-item";
      li.setAttribute("data-pulserec-item-id", item.item_id);
      li.setAttribute("data-pulserec-rec", rec);
      link.textContent = item.title || item.item_id;
      link.href = template ? template.replace("{id}", encodeURIComponent(item.item_id)) : "#";
      why.className = "pulserec-reason";
      why.textContent = item.reason || "";
      li.appendChild(link); li.appendChild(why);
      list.appendChild(li);
    });
    var old = el.querySelector(".pulserec-list");
    if (old) el.replaceChild(list, old); else el.appendChild(list);
    Array.prototype.forEach.call(el.querySelectorAll("[data-pulserec-fallback]"), function (x) { x.hidden = true; });
    el.setAttribute("data-pulserec-state", items.length ? "ready" : "empty");
    el.setAttribute("data-pulserec-rec-id", rec);
    el.dispatchEvent(new CustomEvent("pulserec:render", { bubbles: true, detail: { items: items, recommendation_id: rec } }));
    watchShown(el, rec, strategy, items.map(function (i) { return i.item_id; }));
  }

  // An impression is a list that was seen: half of it in the viewport (or at once, without an observer).
  function watchShown(el, rec, strategy, ids) {
    if (!ids.length || seen[rec]) return;
    var report = function () {
      if (seen[rec]) return;
      seen[rec] = true;
      var shown = { recommendation_id: rec, session_id: sessionId, items: ids, strategy: strategy };
      if (userId) shown.user_id = userId;
      impressions.push(shown);
      if (!timer) timer = setTimeout(function () { flush(false); }, FLUSH_MS);
    };
    if (!window.IntersectionObserver) return report();
    var observer = new IntersectionObserver(function (entries) {
      if (entries.some(function (x) { return x.isIntersecting; })) { observer.disconnect(); report(); }
    }, { threshold: 0.5 });
    observer.observe(el);
  }

  function refresh() {
    var all = document.querySelectorAll("[data-pulserec-widget]");
    return Promise.all(Array.prototype.map.call(all, render));
  }

  function scheduleRefresh() {
    clearTimeout(widgetTimer);
    widgetTimer = setTimeout(refresh, 50);
  }

  // -- public API ---------------------------------------------------------------------------------
  function track(type, props) {
    if (TYPES.indexOf(type) < 0) throw new TypeError("pulserec.track: type must be one of " + TYPES.join(", "));
    Object.keys(props || {}).forEach(function (k) {
      if (PROPS.indexOf(k) < 0) throw new TypeError("pulserec.track: unknown property " + k + " (allowed: " + PROPS.join(", ") + ")");
    });
    var id = enqueue(type, props);
    flush(false);
    return id;
  }

  function identify(id) {
    if (typeof id !== "string" || !id || id.length > 128) throw new TypeError("pulserec.identify: a user id string (1-128)");
    if (id === userId) return Promise.resolve(null);
    userId = id;
    store("user", id);
    queue.forEach(function (e) { e.user_id = id; });
    // The server merges the anonymous session into the user (the login merge) before the
    // batch's events; later events name both.
    login = { user_id: id, session_id: sessionId };
    return flush(false);
  }

  function reset() { // a logout: a new anonymous session, no user
    flush(false);
    userId = null; store("user", null);
    sessionId = "s-" + randomId(); store("session", sessionId);
  }

  function start() {
    var marked = document.querySelectorAll("[data-pulserec-item]:not([data-pulserec-widget])");
    page.items = Array.prototype.map.call(marked, function (el) { return attr(el, "data-pulserec-item"); })
      .filter(function (id, k, all) { return id && all.indexOf(id) === k; });
    try {
      page.from = JSON.parse(window.sessionStorage.getItem(STORE + "from") || "null");
      window.sessionStorage.removeItem(STORE + "from");
    } catch (e) { page.from = null; }
    if (document.visibilityState !== "hidden") startStretch();
    // Last page's beacon may not have arrived yet (or at all): send it again, then draw.
    return resend().then(refresh);
  }

  var ready = document.readyState === "loading"
    ? new Promise(function (resolve) { document.addEventListener("DOMContentLoaded", function () { resolve(start()); }); })
    : start();

  window.pulserec = {
    version: VERSION,
    ready: ready,
    track: track,
    identify: identify,
    reset: reset,
    refresh: refresh,
    flush: function () { return flush(false); },
    get sessionId() { return sessionId; },
    get userId() { return userId; },
    config: config
  };
})(window, document);
