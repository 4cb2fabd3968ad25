"""Serving: HTTP only (FastAPI app, routes, middleware, metrics, dashboard, docs) over the engine."""
