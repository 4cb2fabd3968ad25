"""A shop's history on one machine (issue 17): generate, import, snapshot, restart, serve.

    python benchmarks/scale.py [--sizes 1M,4M,10M] [--with-30m] [--redis] [--phases import,start,replay]

Per size (events; users = events / 10, items = events / 100): `pulserec generate` (Parquet), a
bulk import of all but the last TAIL events (SQLite + in-memory state), RSS after it, a
snapshot (seconds, bytes), the tail imported and the process killed (no clean shutdown), then
a start from the snapshot + tail and a start by full replay (each in a fresh process), and
in-process recommend / similar latency on the started engine. Memory per event / user / item
is the RSS the state adds over an empty engine. With --redis, the same import into the Redis
state (at the first size) and the memory Redis reports for it.

Imports and every phase's figures are kept under --work (scale_cache.py): a run does the
phases asked for and reuses a kept import made by the same import code, so the 10M row can be
measured in turns of the benchmark lock (e.g. `--sizes 10M --phases import`, then `--phases
replay`, then `--phases start` in a quiet window); the table names when each phase ran."""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine, percentiles_ms, print_table, time_each
from scale_cache import Kept, import_fingerprint

#: Events imported after the snapshot, replayed by the start from it.
TAIL = 20_000
#: The generator's seed for every size (the shop is a function of it and the size).
SEED = 17
#: Generated shops are kept here between runs, keyed by size and seed: the 10M shop is over a
#: minute of generate + Parquet on the 2-core box, a sizeable share of one turn of the bench lock.
CACHE = Path(os.environ.get("PULSEREC_SCALE_CACHE", "/tmp/pulserec-scale-cache"))


def size_of(label: str) -> int:
    """'100k' -> 100_000, '4M' -> 4_000_000."""
    return int(float(label[:-1]) * {"k": 1_000, "M": 1_000_000}[label[-1]]) if label[-1] in "kM" else int(label)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shop_dir(events: int) -> Path:
    return CACHE / f"shop-{events}-seed{SEED}"


def phase_generate(out: Path, events: int) -> dict:
    """The shop's Parquet files in `out`, generated unless a complete earlier run left them (its
    generate time is then the one measured then, flagged `cached`). Written into a temporary
    directory and renamed, so a run killed midway leaves no half shop behind."""
    from pulserec.ingest.synthetic import generate_tables, write

    done = out / "generated.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "cached": True}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    started = time.perf_counter()
    tables = generate_tables(n_users=events // 10, n_items=events // 100, n_events=events, seed=SEED,
                             end_ts=1_764_000_000.0)
    write(tables, tmp, "parquet")
    del tables
    result = {"generate_s": time.perf_counter() - started}  # what `pulserec generate --format parquet` does
    started = time.perf_counter()
    _split(tmp / "events.parquet", tmp)
    result["split_s"] = time.perf_counter() - started
    (tmp / "generated.json").write_text(json.dumps(result))
    tmp.rename(out)
    return result


def _split(events_path: Path, out: Path) -> None:
    """head.parquet (all but the last TAIL events) and tail.parquet beside the shop's events."""
    import pyarrow.parquet as pq

    events = pq.read_table(events_path)
    pq.write_table(events.slice(0, len(events) - TAIL), out / "head.parquet")
    pq.write_table(events.slice(len(events) - TAIL), out / "tail.parquet")


def phase_import(data: Path, sample: Path) -> dict:
    """Import all but the tail, snapshot, import the tail, exit without a clean shutdown."""
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.ingest.importer import import_events, import_items

    engine = Engine(Settings.load(data))
    base = rss_bytes()
    import_items(engine, sample / "items.parquet")
    head, tail = sample / "head.parquet", sample / "tail.parquet"
    report = import_events(engine, head)
    out = {"import_s": report.seconds, "import_rate": report.rate, "rss_after_import": rss_bytes(), "rss_empty": base,
           "users": len(engine.state.profiles), "items": len(engine.state.catalog), "events": report.accepted,
           "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    state = engine.state
    out["history_bytes"] = sum(sum(getattr(s, f).nbytes for f in vars(s)) for s in state.histories.segments)
    state.cooc.compact()
    out["cooc_bytes"] = state.cooc.base.data.nbytes + state.cooc.base.indices.nbytes + state.cooc.base.indptr.nbytes
    out["cooc_nnz"] = state.cooc.base.nnz
    out["profile_bytes"] = state.profiles.nbytes
    started = time.perf_counter()
    with engine.lock:
        engine.snapshots.header(state, engine.store)
    out["snapshot_header_ms"] = (time.perf_counter() - started) * 1000  # the part of the pause before the fork
    started = time.perf_counter()
    written = engine.checkpoints.write()
    out["snapshot_s"], out["snapshot_bytes"] = time.perf_counter() - started, written["bytes"]
    started = time.perf_counter()
    engine.checkpoints.write(background=True)
    out["snapshot_fork_pause_ms"] = (time.perf_counter() - started) * 1000  # what writers wait for
    engine.snapshots.wait()
    import_events(engine, tail)
    os._exit(dump(out))  # no clean shutdown: the next start replays the tail after the snapshot


def phase_start(data: Path, sample: Path, snapshots: bool, requests: int) -> dict:
    import pandas as pd

    from pulserec.config import Settings
    from pulserec.engine import Engine

    started = time.perf_counter()
    engine = Engine(Settings.load(data, snapshots=snapshots, model_watch_interval=0))
    out = {"start_s": time.perf_counter() - started, "rss_started": rss_bytes(), "events_started": engine.state.applied}
    if snapshots:
        latest = engine.snapshots.latest  # set by a load; None: the snapshot was refused (logged)
        if latest is None:
            raise SystemExit("the start did not load the import's snapshot: it replayed the whole log")
        out["snapshot_watermark"] = latest["watermark"]
    if requests:
        users = pd.read_parquet(sample / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
        items = pd.read_parquet(sample / "items.parquet", columns=["item_id"])["item_id"].to_numpy()
        rng = np.random.default_rng(0)
        # A fresh draw of users per pass: item-kNN keeps a user's long-term part between their
        # requests (models/long_term_cache.py), so a pass over the same users again measures
        # returning users; that pass is timed apart (recommend_returning_ms).
        warm, picks, quiet, cpu = (rng.choice(users, k) for k in (50, requests, requests, requests))
        things = rng.choice(items, requests)
        for user in warm:
            engine.recommend(str(user), 10)
        out["recommend_ms"] = percentiles_ms(time_each(lambda i: engine.recommend(str(picks[i]), 10), requests))
        out["recommend_returning_ms"] = percentiles_ms(time_each(lambda i: engine.recommend(str(picks[i]), 10), requests))
        out["similar_ms"] = percentiles_ms(time_each(lambda i: engine.similar(str(things[i]), 10), requests))
        gc.disable()  # other users without the cyclic collector: is the tail garbage collection?
        out["recommend_nogc_ms"] = percentiles_ms(time_each(lambda i: engine.recommend(str(quiet[i]), 10), requests))
        gc.enable()
        out["gc_collections"] = [g["collections"] for g in gc.get_stats()]
        # CPU time of this thread per request: a wall-clock tail that the CPU time lacks is time
        # spent waiting for a core (the box's other processes), not work of the request.
        out["recommend_cpu_ms"] = percentiles_ms(time_each(lambda i: engine.recommend(str(cpu[i]), 10), requests,
                                                           clock=time.thread_time))
    os._exit(dump(out))  # skip the shutdown snapshot: the next start must find the same files


def phase_redis(sample: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import redis
    from local_redis import LocalRedis

    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.ingest.importer import import_events, import_items

    with tempfile.TemporaryDirectory() as tmp, LocalRedis(tmp) as local:
        engine = Engine(Settings.load(Path(tmp) / "data", state_url=local.url))
        before = redis.Redis.from_url(local.url).info("memory")["used_memory"]
        import_items(engine, sample / "items.parquet")
        report = import_events(engine, sample / "head.parquet")
        client = redis.Redis.from_url(local.url)
        used, keys = client.info("memory")["used_memory"] - before, client.dbsize()
        engine.close()
    return {"redis_import_rate": report.rate, "redis_bytes": used, "redis_events": report.accepted, "redis_keys": keys}


def dump(values: dict) -> int:
    print("RESULT " + json.dumps(values), flush=True)
    return 0


def run_phase(*args: str, script: str = __file__) -> dict:
    """One phase of `script` in a fresh interpreter (clean RSS); its RESULT line."""
    result = subprocess.run([sys.executable, script, "--phase", *args], capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"phase {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


#: The phases of a size's row after generate, in the order they run.
PHASES = ("import", "start", "replay", "redis")


def bench(label: str, kept: Kept, phases: set[str], requests: int, reimport: bool, stale_ok: bool) -> None:
    """Run `phases` of one size, each kept in `kept` as soon as it is done (see scale_cache)."""
    events, load = size_of(label), os.getloadavg()[0]
    sample = shop_dir(events)
    kept.record("generate", run_phase("generate", str(sample), str(events)), load)
    fingerprint = import_fingerprint()
    if "import" in phases and (reimport or not kept.import_usable(fingerprint)):
        data, load = kept.fresh_data(), os.getloadavg()[0]
        kept.record("import", run_phase("import", str(data), str(sample)), load, fingerprint=fingerprint)
    elif not kept.import_usable(fingerprint) and phases & {"start", "replay"}:
        if not (stale_ok and "import" in kept.phases and kept.data.is_dir()):
            raise SystemExit(f"{label}: no import made by this code under {kept.work}: add 'import' to --phases "
                             f"(or --stale-import-ok to start from the one made at {kept.phases.get('import', {}).get('commit')})")
        print(f"# {label}: starting from an import made by other code (commit {kept.phases['import']['commit']})")
    for phase, args in (("start", ("1", str(requests))), ("replay", ("0", "0"))):
        if phase in phases:
            load = os.getloadavg()[0]
            kept.record(phase, run_phase("start", str(kept.data), str(sample), *args), load,
                        import_commit=kept.phases["import"]["commit"])
    if "redis" in phases:
        load = os.getloadavg()[0]
        kept.record("redis", run_phase("redis", str(sample)), load)
    print(json.dumps({"label": label, **kept.phases}), flush=True)


def report(kept: list[Kept]) -> None:
    rows = [_row(k.label, k.phases) for k in kept]
    print_table(["events", "generate s", "import s (rate)", "RSS after import", "snapshot write / size", "bg snapshot pause",
                 "start: snapshot+tail s", "start: full replay s", "recommend p50/p99 ms", "similar p50/p99 ms",
                 "state bytes per event / user / item", "history B/event, profile B/user, cooc B/item", "Redis state"], rows)
    for k in kept:  # when each figure was measured: the rows may come from several turns of the lock
        print(f"# {k.label}: " + "; ".join(f"{name} {p['at']} (load {p['load'][0]}-{p['load'][1]}, {p['commit']})"
                                           for name, p in k.phases.items()))


def _row(label: str, phases: dict[str, dict]) -> list[str]:
    mib, none = 1024 ** 2, "-"
    imp, start, replay, redis = (phases.get(p) for p in PHASES)
    row = [label, f"{phases['generate']['generate_s']:.1f}" if "generate" in phases else none]
    if imp:
        state = imp["rss_after_import"] - imp["rss_empty"]
        row += [f"{imp['import_s']:.0f} ({imp['import_rate'] / 1000:.1f}k/s)", f"{imp['rss_after_import'] / 1024 ** 3:.2f} GiB",
                f"{imp['snapshot_s']:.1f} s / {imp['snapshot_bytes'] / mib:.0f} MiB",
                f"{imp['snapshot_fork_pause_ms']:.0f} ms ({imp['snapshot_header_ms']:.0f} header)"]
    else:
        row += [none] * 4
    row.append(f"{start['start_s']:.1f}" if start else none)
    row.append(f"{replay['start_s']:.1f}" if replay else none)
    row += (["{:.2f} / {:.2f} (no gc {:.2f} / {:.2f}; cpu {:.2f} / {:.2f}; returning {})".format(
                 *start["recommend_ms"], *start["recommend_nogc_ms"], *start["recommend_cpu_ms"],
                 "{:.2f} / {:.2f}".format(*start["recommend_returning_ms"]) if "recommend_returning_ms" in start else "-"),
             "{:.2f} / {:.2f}".format(*start["similar_ms"])] if start and "recommend_ms" in start else [none] * 2)
    row += ([f"{state / imp['events']:.0f} / {state / imp['users']:.0f} / {state / imp['items']:.0f}",
             f"{imp['history_bytes'] / imp['events']:.1f} / {imp['profile_bytes'] / imp['users']:.0f} / {imp['cooc_bytes'] / imp['items']:.0f}"]
            if imp else [none] * 2)
    row.append(f"{redis['redis_bytes'] / mib:.0f} MiB, {redis['redis_bytes'] / redis['redis_events']:.0f} B/event" if redis else none)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,4M,10M")
    parser.add_argument("--with-30m", action="store_true", help="also 30M events (long)")
    parser.add_argument("--redis", action="store_true", help="also the Redis state's memory at the smallest size")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis-only", action="store_true",
                        help="only the Redis state's memory (import into it) at the first size")
    parser.add_argument("--phases", default="import,start,replay",
                        help="which of import,start,replay,redis to run (the rest comes from earlier runs)")
    parser.add_argument("--reimport", action="store_true", help="import again even if the kept import is usable")
    parser.add_argument("--stale-import-ok", action="store_true",
                        help="start from a kept import that other code made (named in the output)")
    parser.add_argument("--work", type=Path, default=CACHE / "work",
                        help="where imports and figures are kept between runs (one data dir per size)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        if name == "generate":
            dump(phase_generate(Path(rest[0]), int(rest[1])))
        elif name == "import":
            phase_import(Path(rest[0]), Path(rest[1]))
        elif name == "start":
            phase_start(Path(rest[0]), Path(rest[1]), rest[2] == "1", int(rest[3]))
        else:
            dump(phase_redis(Path(rest[0])))
        return
    sizes = args.sizes.split(",") + (["30M"] if args.with_30m else [])
    if args.redis_only:
        sample = shop_dir(size_of(sizes[0]))
        out = {"label": sizes[0], "load_avg": os.getloadavg()[0], **run_phase("generate", str(sample), str(size_of(sizes[0]))),
               **run_phase("redis", str(sample)), "load_avg_end": os.getloadavg()[0]}
        print(json.dumps(out))
        print(f"Redis state at {out['redis_events']:,} events ({out['redis_keys']:,} keys): "
              f"{out['redis_bytes'] / 2 ** 20:.0f} MiB, {out['redis_bytes'] / out['redis_events']:.0f} B/event, "
              f"import {out['redis_import_rate'] / 1000:.1f}k events/s (load {out['load_avg']:.1f}-{out['load_avg_end']:.1f})")
        return
    phases = set(args.phases.split(","))
    if phases - set(PHASES):
        parser.error(f"--phases: unknown {sorted(phases - set(PHASES))}; known: {', '.join(PHASES)}")
    print(f"# scale benchmark: {machine()}, load {os.getloadavg()[0]:.1f}; TAIL={TAIL:,} events after the snapshot; "
          f"kept under {args.work}")
    kept = [Kept(args.work, label) for label in sizes]
    for k, item in enumerate(kept):  # the Redis state at the first (smallest) size only
        wanted = phases - {"redis"} | ({"redis"} if k == 0 and (args.redis or "redis" in phases) else set())
        bench(item.label, item, wanted, args.requests, args.reimport, args.stale_import_ok)
    report(kept)


if __name__ == "__main__":
    main()
