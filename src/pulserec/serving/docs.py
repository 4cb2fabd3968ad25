"""Offline API docs: Swagger UI served from the package (no CDN), at /docs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

STATIC_URL = "/static"
SWAGGER_JS = f"{STATIC_URL}/swagger/swagger-ui-bundle.js"
SWAGGER_CSS = f"{STATIC_URL}/swagger/swagger-ui.css"
FAVICON = f"{STATIC_URL}/dashboard/favicon.svg"


def add_docs(app: FastAPI, url: str = "/docs") -> None:
    """Serve Swagger UI for `app.openapi_url` from local assets (create the app with docs_url=None)."""

    @app.get(url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
                                   swagger_js_url=SWAGGER_JS, swagger_css_url=SWAGGER_CSS, swagger_favicon_url=FAVICON)
