"""The storefront's HTML (GET /shop): a small shop over the catalogue, built on pulserec.js.

The pages are what a shop's own server would render: the catalogue, a product page, search
results. Everything personal on them (recommended for you, similar items, trending, each with its
reason) is drawn in the browser by pulserec.js, which also reports what the visitor does; the
server side never reads a profile. Every value is HTML-escaped where it is written. Under an
app (`/apps/{app}/shop`) every link, the script and the SDK's API calls carry the app's prefix
(`base`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

SHOP_PATH = "/shop"
ITEM_URL = SHOP_PATH + "/items/{id}"
STYLE = "/static/shop/shop.css"
SCRIPT = "/static/shop/shop.js"


def item_url(base: str, item_id: str) -> str:
    return base + ITEM_URL.replace("{id}", quote(item_id, safe=""))


def price(value: float | None) -> str:
    return "" if value is None else f"€{value:,.2f}"


def page(title: str, body: str, key: str, base: str = "", notice: str | None = None) -> str:
    """A whole page: the SDK's script tag (with the publishable key), the header and `body`."""
    warning = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)} · pulserec shop</title>
  <link rel="icon" href="/static/dashboard/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{STYLE}">
  <script src="{base}/sdk/pulserec.js" data-key="{escape(key)}" data-api="{base}" data-item-url="{base}{ITEM_URL}" defer></script>
  <script src="{SCRIPT}" defer></script>
</head>
<body>
  <header class="bar">
    <a class="brand" href="{base}{SHOP_PATH}">pulserec shop</a>
    <form class="search" action="{base}{SHOP_PATH}/search" method="get" role="search">
      <input id="q" type="search" name="q" placeholder="Search products…" aria-label="Search products" maxlength="200" required>
      <button type="submit">Search</button>
    </form>
    <form id="sign-in" class="who"><input id="user" placeholder="user id" aria-label="Sign in as" maxlength="128">
      <button type="submit">Sign in</button></form>
    <span id="signed-in" class="who" hidden>signed in as <b id="user-name"></b> <button id="sign-out" type="button">Sign out</button></span>
  </header>
  {warning}
  <main>{body}</main>
  <footer class="foot">Recommendations by pulserec: every click, dwell and search changes them. <a href="/dashboard">Dashboard</a></footer>
</body>
</html>"""


def widget(kind: str, heading: str, n: int = 6, item: str | None = None) -> str:
    """A container pulserec.js fills; it holds its heading and says it is loading until then."""
    target = f' data-pulserec-item="{escape(item)}"' if item else ""
    return (f'<section class="rail"><h2>{escape(heading)}</h2>'
            f'<div id="{kind}" class="widget" data-pulserec-widget="{kind}" data-pulserec-n="{n}"{target}>'
            f'<p class="muted">loading…</p></div></section>')


def tiles(base: str, items: Iterable[Mapping[str, Any]]) -> str:
    cards = [f'<li class="tile"><a href="{item_url(base, str(i["item_id"]))}" data-item="{escape(str(i["item_id"]))}">'
             f'<span class="title">{escape(str(i.get("title") or i["item_id"]))}</span>'
             f'<span class="meta">{escape(str(i.get("category") or ""))} {price(i.get("price"))}</span></a></li>'
             for i in items]
    return f'<ul class="grid">{"".join(cards)}</ul>' if cards else '<p class="muted">Nothing here.</p>'


def home(base: str, items: list[Mapping[str, Any]], page_no: int, more: bool, category: str | None,
         categories: list[str]) -> str:
    def link(label: str, **query: Any) -> str:
        params = urlencode({k: v for k, v in query.items() if v})
        return f'{base}{SHOP_PATH}?{params}' if params else base + SHOP_PATH

    chips = "".join(f'<a class="chip{" on" if c == category else ""}" href="{escape(link(c, category=c))}">{escape(c)}</a>'
                    for c in categories)
    pager = "".join((
        f'<a id="prev" href="{escape(link("", category=category, page=page_no - 1 if page_no > 2 else None))}">‹ previous</a>'
        if page_no > 1 else "",
        f'<a id="next" href="{escape(link("", category=category, page=page_no + 1))}">next ›</a>' if more else ""))
    return (widget("recommendations", "Recommended for you") + widget("trending", "Trending now")
            + f'<section><h2>Products</h2><nav class="chips">{chips}</nav>{tiles(base, items)}'
              f'<nav class="pager">{pager}</nav></section>')


def product(item: Mapping[str, Any]) -> str:
    item_id = str(item["item_id"])
    tags = "".join(f'<span class="chip">{escape(str(t))}</span>' for t in item.get("tags") or ())
    value = item.get("price")
    data = f'data-item="{escape(item_id)}"' + (f' data-value="{value}"' if value is not None else "")
    return (f'<article class="product" data-pulserec-item="{escape(item_id)}">'
            f'<h1 id="title">{escape(str(item.get("title") or item_id))}</h1>'
            f'<p class="meta">{escape(str(item.get("category") or ""))} · <b>{price(value)}</b></p>'
            f'<p>{escape(str(item.get("description") or ""))}</p><p>{tags}</p>'
            f'<p><button id="add-to-cart" data-shop-track="add_to_cart" {data}>Add to cart</button> '
            f'<button id="buy" data-shop-track="purchase" {data}>Buy now</button> '
            f'<span id="done" class="muted" role="status"></span></p></article>'
            + widget("similar", "Similar items", item=item_id) + widget("recommendations", "Recommended for you"))


def results(base: str, query: str, items: list[Mapping[str, Any]], n: int) -> str:
    """The server's lexical matches, replaced in the browser by the same query ranked for the
    visitor (GET /search through pulserec.js)."""
    return (f'<section><h1>Results for “{escape(query)}”</h1>'
            f'<div id="search" class="widget" data-pulserec-widget="search" data-pulserec-query="{escape(query)}" '
            f'data-pulserec-n="{n}"><div data-pulserec-fallback>{tiles(base, items)}</div></div></section>'
            + widget("recommendations", "Recommended for you"))
