"""Several uvicorn worker processes over one shared (Redis) state.

uvicorn starts workers from an import string, so the settings travel in `PULSEREC_*`
environment variables and each worker builds its own engine from them with `app_from_env`."""

from __future__ import annotations

import os

from fastapi import FastAPI

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app


def app_from_env() -> FastAPI:
    """The app of one worker: an engine on the settings found in the environment."""
    engine = Engine(Settings.load())
    app = create_app(engine)
    app.router.on_shutdown.append(engine.close)
    return app


def serve_workers(settings: Settings, host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    os.environ["PULSEREC_DATA_DIR"] = str(settings.data_dir)
    os.environ["PULSEREC_STATE_URL"] = settings.state_url
    os.environ["PULSEREC_STATE_NAMESPACE"] = settings.state_namespace
    os.environ["PULSEREC_STREAM_URL"] = settings.stream_url
    uvicorn.run("pulserec.serving.workers:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
