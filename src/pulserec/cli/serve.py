"""`pulserec serve`: the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from pulserec.cli.common import DataDir, StateUrl, StreamUrl, console, open_engine


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
        workers: Annotated[int, typer.Option(help="Worker processes (more than 1 needs --state).", min=1)] = 1,
        data_dir: DataDir = None,
        state: StateUrl = None,
        stream: StreamUrl = None,
    ) -> None:
        """Serve the HTTP API (docs at /docs).

        Example: pulserec serve --port 8000 --data-dir ./shop-data
        Several workers sharing one Redis state: pulserec serve --workers 4 --state redis://127.0.0.1:6379/0
        """
        import uvicorn

        from pulserec.serving.app import create_app

        if workers > 1 and not state:
            raise typer.BadParameter("several workers need --state redis://...: each would otherwise keep its own state",
                                     param_hint="--workers")
        engine = open_engine(data_dir, state_url=state, stream_url=stream)
        console.print(f"serving {engine.stats()['events_applied']:,} events on http://{host}:{port} (docs: /docs)")
        if workers > 1:  # the state is loaded in Redis now; each worker attaches to it
            from pulserec.serving.workers import serve_workers

            engine.close()
            serve_workers(engine.settings, host, port, workers, log_level)
            return
        try:
            uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level)
        finally:
            engine.close()

    @app.command()
    def stats(data_dir: DataDir = None) -> None:
        """Print store and online-state statistics."""
        import json

        engine = open_engine(data_dir)
        console.print_json(json.dumps(engine.stats()))
        engine.close()
