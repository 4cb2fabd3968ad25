"""Serving: recommendations, similar items and profiles over HTTP (FastAPI)."""
