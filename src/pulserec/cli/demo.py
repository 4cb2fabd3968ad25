"""`pulserec demo`: generate a shop, import it, build models, serve, and replay live events."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from pulserec.cli.common import console, progress_bar

if TYPE_CHECKING:
    import pandas as pd


def demo_dir(data_dir: Path | None) -> Path:
    """The named directory, or a new temporary one: the demo never litters the current directory."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="pulserec-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _fresh(data_dir: Path) -> None:
    for name in ("pulserec.db", "pulserec.db-wal", "pulserec.db-shm"):
        (data_dir / name).unlink(missing_ok=True)


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    event = {k: row[k] for k in ("event_id", "user_id", "item_id", "type") if isinstance(row.get(k), str)}
    event["timestamp"] = float(row["ts"])
    if isinstance(row.get("query"), str):
        event["query"] = row["query"]
    if row.get("value") is not None and row["value"] == row["value"]:
        event["value"] = float(row["value"])
    event["context"] = {"device": row["device"], "location": row["location"]}
    return event


def _show(title: str, answer: dict[str, Any], before: list[str] | None = None) -> list[str]:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("category")
    table.add_column("score", justify="right")
    table.add_column("why")
    ids = []
    for rank, item in enumerate(answer["items"], start=1):
        ids.append(item["item_id"])
        fresh = before is not None and item["item_id"] not in before
        label = f"[bold green]{item['title']}[/] (new)" if fresh else str(item["title"])
        table.add_row(str(rank), label, str(item["category"]), f"{item['score']:.3f}", item["reason"])
    console.print(table)
    return ids


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", show_default="a new temporary directory",
                                                      help="Where the demo's store, models and sample files go.")] = None,
        events: Annotated[int, typer.Option(help="Size of the generated event stream.", min=1000, max=5_000_000)] = 20_000,
        live_share: Annotated[float, typer.Option(help="Share of the stream replayed live over HTTP.", min=0.01, max=0.9)] = 0.05,
        seed: Annotated[int, typer.Option(help="Random seed of the synthetic shop.")] = 7,
        watch: Annotated[int, typer.Option(help="How many users to follow during the replay.", min=1, max=10)] = 2,
        keep_serving: Annotated[bool, typer.Option("--keep-serving", help="Keep the API up after the replay.")] = False,
        port: Annotated[int | None, typer.Option(help="Port for the API (default: a free one).")] = None,
        ab_visits: Annotated[int, typer.Option(help="Simulated visits in the A/B test.", min=50, max=100_000)] = 600,
        open_shop: Annotated[bool, typer.Option("--open", help="Print the storefront's URL (GET /shop), open it in a "
                                                               "browser where there is a display, and keep serving.")] = False,
    ) -> None:
        """Import a synthetic shop, build the models, start the API and replay live events.

        Recommendation lists are printed before and after the followed users act, so you can
        watch them change. Example: pulserec demo --events 50000 --keep-serving --port 8000
        """
        from pulserec.client import Client
        from pulserec.serving.server import BackgroundServer

        data_dir = demo_dir(data_dir)
        _fresh(data_dir)
        console.print(f"demo data directory: {data_dir.resolve()}")
        shop = _generate(data_dir, events, live_share, seed)
        engine = _import(data_dir, shop)
        console.rule("[bold]3. build models")
        for line in _build_models(engine):
            console.print(line)
        console.rule("[bold]4. serve")
        server = BackgroundServer(engine, port=port).start()
        console.print(f"API on {server.url}  (docs: {server.url}/docs)")
        if open_shop:
            _open_shop(f"{server.url}/shop")
        client = Client(server.url)
        replay = _replay(engine, client, shop.live, watch)
        _new_visitor(client, shop.data)
        console.rule("[bold]7. A/B test: personalised blend vs trending, simulated clicks")
        _ab_test(client, shop.data, visits=ab_visits, seed=seed)
        _summary(engine, client, replay)
        client.close()
        if keep_serving or open_shop:
            if open_shop:
                console.print(f"storefront: {server.url}/shop")
            _serve_until_interrupted(server.url)
        server.stop()
        engine.close()
        console.print(f"the demo's store, models and sample files are in {data_dir.resolve()} "
                      f"(`pulserec serve --data-dir {data_dir.resolve()}` serves them again)")


@dataclass
class DemoShop:
    """The generated shop, its past events (imported) and live ones (replayed over HTTP)."""

    data: Any
    history: pd.DataFrame
    live: pd.DataFrame
    paths: dict[str, Path]
    history_csv: Path


@dataclass
class Replay:
    """What the live replay measured, for the summary."""

    rows: list[dict[str, Any]]
    sent: int
    seconds: float
    latencies: list[float] = field(default_factory=list)


def _generate(data_dir: Path, events: int, live_share: float, seed: int) -> DemoShop:
    from pulserec.ingest.synthetic import generate, write

    console.rule("[bold]1. generate a synthetic shop")
    data = generate(n_users=max(50, events // 60), n_items=max(100, events // 50), n_events=events, seed=seed,
                    end_ts=time.time() - 600)
    cut = int(len(data.events) * (1 - live_share))
    history, live = data.events.iloc[:cut], data.events.iloc[cut:]
    sample = data_dir / "sample"
    paths = write(data, sample)
    history.to_csv(sample / "history.csv", index=False)
    console.print(f"{len(data.items)} items, {len(data.users)} users, {len(history):,} past events, "
                  f"{len(live):,} live events -> {sample}")
    return DemoShop(data, history, live, paths, sample / "history.csv")


def _import(data_dir: Path, shop: DemoShop) -> Any:
    """A new engine over `data_dir` holding the shop's items, users and past events."""
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.ingest.importer import import_events, import_items, import_users

    console.rule("[bold]2. import")
    engine = Engine(Settings.load(data_dir))
    report = import_items(engine, shop.paths["items"])
    console.print(f"items: {report.accepted} stored")
    report = import_users(engine, shop.paths["users"])
    console.print(f"users: {report.accepted} stored")
    with progress_bar("importing past events", len(shop.history)) as progress:
        report = import_events(engine, shop.history_csv, progress=lambda n: progress.advance(progress.task_ids[0], n))
    console.print(f"events: {report.accepted:,} stored, {report.duplicates} duplicates, {report.rejected} rejected "
                  f"in {report.seconds:.2f}s ({report.rate:,.0f}/s)")
    return engine


def _replay(engine, client, live: pd.DataFrame, watch: int) -> Replay:
    """Send the live events over HTTP in batches of 100; each followed user's first two item
    events go alone, each followed by their new recommendations (printed against the last)."""
    console.rule("[bold]5. replay live events")
    rows = live.to_dict("records")
    counts = live["user_id"].value_counts()
    watched = [u for u in counts.index if counts[u] >= 3][:watch]
    shown = {user: _show(f"{user} before the live stream", client.recommend(user, n=5)) for user in watched}
    updates_shown = {u: 0 for u in watched}
    replay = Replay(rows, 0, 0.0)
    batch: list[dict[str, Any]] = []
    started = time.perf_counter()
    for row in rows:
        event = _event_json(row)
        user = row["user_id"]
        if user in updates_shown and updates_shown[user] < 2 and event.get("item_id"):
            replay.sent += _send(client, batch) + _send(client, [event])
            batch = []
            t0 = time.perf_counter()
            answer = client.recommend(user, n=5)
            replay.latencies.append(time.perf_counter() - t0)
            record = engine.item(event["item_id"])
            title = record["title"] if record and record["title"] else event["item_id"]
            shown[user] = _show(f"{user} after {event['type']} of '{title}'", answer, shown[user])
            updates_shown[user] += 1
            continue
        batch.append(event)
        if len(batch) >= 100:
            replay.sent += _send(client, batch)
            batch = []
    replay.sent += _send(client, batch)
    replay.seconds = time.perf_counter() - started
    return replay


def _send(client, events: list[dict[str, Any]]) -> int:
    if events:
        client.send_events(events)
    return len(events)


def _new_visitor(client, data) -> None:
    console.rule("[bold]6. a brand-new visitor: cold start, then personal after 3 events")
    visitor = f"visitor-{int(time.time())}"
    before = _show(f"{visitor} (no history)", client.recommend(visitor, n=5))
    target = data.items[int(np.argmax([r.category == "shoes" for r in data.items]))]
    similar = client.similar(target.item_id, n=3)["items"]
    for item_id in [target.item_id] + [s["item_id"] for s in similar[:2]]:
        client.send_event(user_id=visitor, item_id=item_id, type="view", context={"device": "mobile"})
    _show(f"{visitor} after viewing 3 items around '{target.title}'", client.recommend(visitor, n=5), before)
    profile = client.profile(visitor)
    console.print(f"profile of {visitor}: interests {[c['name'] for c in profile['interests']['categories']]}, "
                  f"segments {profile['segments']}")


def _summary(engine, client, replay: Replay) -> None:
    """Throughput of the replay and HTTP latency (the replay's requests and 50 more)."""
    latencies = list(replay.latencies)
    for k in range(50):
        t0 = time.perf_counter()
        client.recommend(str(replay.rows[k % len(replay.rows)]["user_id"]), n=10)
        latencies.append(time.perf_counter() - t0)
    lat = np.array(latencies) * 1000
    console.rule("[bold]summary")
    console.print(f"replayed {replay.sent:,} live events over HTTP in {replay.seconds:.2f}s "
                  f"({replay.sent / replay.seconds:,.0f} events/s); recommendation latency over HTTP "
                  f"p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms")
    console.print(engine.stats()["counters"])


def _open_shop(url: str) -> None:
    """Print the storefront's URL and open it where a browser can show it: on Linux only with a
    display, since without one `webbrowser` may start a text browser in this very terminal."""
    console.print(f"storefront: {url}  (click around: its lists change as you go)")
    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        webbrowser.open(url)


def _serve_until_interrupted(url: str) -> None:
    console.print(f"serving on {url} - press Ctrl-C to stop")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _ab_test(client, data, visits: int, seed: int) -> None:
    """Simulated visitors click according to a hidden preference model (their favourite
    categories), so the experiment report converges on the variant that serves them better."""
    client.put_experiment("demo-ab", {"variants": [{"name": "trending", "strategy": "trending", "weight": 1},
                                                   {"name": "personal", "strategy": "default", "weight": 1}]})
    favourites = dict(zip(data.users["user_id"], data.users["favourite_categories"].str.split("|")))
    users = list(favourites)
    rng = np.random.default_rng(seed)
    checkpoints = {visits // 6, visits // 2, visits}
    for visit in range(1, visits + 1):
        user = users[rng.integers(len(users))]
        answer = client.recommend(user, n=5, experiment="demo-ab")
        rec_id = answer["recommendation_id"]
        client.post_impression(rec_id, user_id=user)
        clicked = False
        for item in answer["items"][:3]:
            liked = item["category"] in favourites[user]
            if not clicked and rng.random() < (0.30 if liked else 0.03):
                clicked = True
                client.send_event(user_id=user, item_id=item["item_id"], type="click", recommendation_id=rec_id)
                if rng.random() < 0.3:
                    client.send_event(user_id=user, item_id=item["item_id"], type="purchase", recommendation_id=rec_id)
        if visit in checkpoints:
            report = client.experiment("demo-ab")
            table = Table(title=f"experiment demo-ab after {visit} visits", title_justify="left")
            for column in ("variant", "impressions", "CTR", "conversion", "lift vs control", "p-value"):
                table.add_column(column)
            for v in report["variants"]:
                test = v.get("ctr_vs_control") or {}
                lift = test.get("lift")
                table.add_row(v["name"], str(v["impressions"]), f"{v['ctr']:.1%}", f"{v['conversion_rate']:.1%}",
                              "-" if lift is None else f"{lift:+.0%}",
                              "-" if not test else f"{test['p_value']:.2g}" + (" (significant)" if test["significant"] else ""))
            console.print(table)


def _build_models(engine) -> list[str]:
    """Online models are built by the import; batch models train here when available."""
    stats = engine.stats()
    lines = [f"online item-kNN: {stats['cooccurrence_nnz']:,} co-occurrence pairs over {stats['items']} items",
             f"profiles: {stats['users']} users; trending/popular counters over {stats['events_applied']:,} events"]
    lines += engine.training.train()
    lines.append(f"strategies: {', '.join(sorted(engine.served_models()))}")
    return lines
