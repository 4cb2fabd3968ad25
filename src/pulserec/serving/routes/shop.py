"""The storefront: GET /shop (products), /shop/items/{id} (a product), /shop/search?q= (results).

Pages of the catalogue (their access class is the catalogue's, serving/auth.py); what is
personal on them comes from pulserec.js in the browser, with the first publishable key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from pulserec.engine import Engine
from pulserec.serving import shop
from pulserec.serving.routes.deps import ItemId, app_path, engine_of

router = APIRouter(tags=["shop"], include_in_schema=False)

#: Products per page of the grid.
PER_PAGE = 24
#: Most-engaged items read to fill a page: inactive and uncatalogued ones are left out of it.
SCAN = 4 * PER_PAGE
NO_KEY = ("API keys are configured but no publishable key: recommendations cannot load in the browser. "
          "Set the setting publishable_keys (PULSEREC_PUBLISHABLE_KEYS).")


def _html(request: Request, title: str, body: str) -> HTMLResponse:
    settings = engine_of(request).settings
    key = settings.publishable_keys[0] if settings.publishable_keys else ""
    notice = NO_KEY if settings.api_keys and not key else None
    return HTMLResponse(shop.page(title, body, key, app_path(request, ""), notice), headers={"Cache-Control": "no-store"})


def _catalogue_page(engine: Engine, page: int, category: str | None) -> tuple[list[dict], bool]:
    """Active catalogued items, most events first, one page of them (and whether more follow)."""
    wanted, offset, found = page * PER_PAGE + 1, 0, []
    while len(found) < wanted:
        rows = engine.history.items("events", True, offset, SCAN)["rows"]
        found += [r for r in rows if r["catalogued"] and r["active"] and (category is None or r["category"] == category)]
        if len(rows) < SCAN:
            break
        offset += SCAN
    start = (page - 1) * PER_PAGE
    return found[start:start + PER_PAGE], len(found) > start + PER_PAGE


# Plain `def` routes: they read the store (SQLite) and the engine under its lock, so FastAPI runs
# them in its thread pool.
@router.get(shop.SHOP_PATH, response_class=HTMLResponse)
def home(request: Request, page: Annotated[int, Query(ge=1, le=1000)] = 1,
         category: Annotated[str | None, Query(min_length=1, max_length=128)] = None) -> HTMLResponse:
    engine = engine_of(request)
    items, more = _catalogue_page(engine, page, category)
    categories = engine.read(lambda state: sorted({r.category for r in state.catalog.records() if r.category and r.active and r.listed}))
    return _html(request, "Products", shop.home(app_path(request, ""), items, page, more, category, categories))


@router.get(shop.SHOP_PATH + "/items/{item_id}", response_class=HTMLResponse)
def product(item_id: ItemId, request: Request) -> HTMLResponse:
    engine = engine_of(request)
    item = engine.item(item_id)
    if item is None or item.get("title") is None and item.get("category") is None:
        raise HTTPException(404, f"unknown item {item_id!r}")
    return _html(request, str(item.get("title") or item_id), shop.product(item))


@router.get(shop.SHOP_PATH + "/search", response_class=HTMLResponse)
def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]) -> HTMLResponse:
    engine = engine_of(request)
    query = q.strip()
    if not query:
        raise HTTPException(422, "q: must not be blank")
    found = [r.to_dict() for r in engine.search_items(query, PER_PAGE)]  # lexical only: who asks is the browser's
    return _html(request, f"Search: {query}", shop.results(app_path(request, ""), query, found, PER_PAGE))
