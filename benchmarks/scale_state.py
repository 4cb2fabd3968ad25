"""The online state alone at shop sizes (issue 17.2/17.5): memory, serving latency, snapshot
write and load, without the SQLite log.

    python benchmarks/scale_state.py [--sizes 4M,10M] [--requests 2000]

`benchmarks/scale.py` runs the whole pipeline (generate, `import` into SQLite + state, restart
from a snapshot + tail and by full replay); on the shared 2-core box its SQLite writes (~20-45k
rows/s there, see docs/benchmarks.md) make a 10M-event run take far longer than a polite turn
of the benchmark lock. This script builds the same in-memory state the import builds (the
importer's own validation, then `OnlineState.apply_frame` per 250k-row chunk, catalogue from
the items file), then in that process: RSS and bytes per component, recommend / similar latency
through the `RecommendationService` the engine serves with (p50/p99 by wall clock, without the
garbage collector, and in thread CPU time), a snapshot written as the engine writes one and the
fork a background snapshot pauses writers for; then, in a fresh process, the start from that
snapshot (load + state rebuilt from the arrays). Per size: users = events / 10, items = events
/ 100, as in scale.py."""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine, percentiles_ms, print_table, time_each
import scale
from scale import dump, phase_generate, rss_bytes, shop_dir, size_of


def _items(path: Path) -> list:
    import pandas as pd

    from pulserec.records import ItemRecord

    frame = pd.read_parquet(path)
    return [ItemRecord(item_id=r.item_id, title=r.title, description=r.description, category=r.category,
                       tags=tuple(t for t in r.tags.split("|") if t), price=float(r.price))
            for r in frame.itertuples(index=False)]


def phase_build(sample: Path, data: Path, requests: int) -> dict:
    import pyarrow.parquet as pq

    from pulserec.config import Settings
    from pulserec.ingest.importer import checks_of, normalise_events
    from pulserec.online import snapshot_file
    from pulserec.online.state import OnlineState
    from pulserec.online.state_arrays import to_arrays
    from pulserec.recommend.service import RecommendationService

    settings = Settings.load(data)
    state = OnlineState(settings)
    empty = rss_bytes()
    state.catalog.upsert_many(_items(sample / "items.parquet"))
    seq, apply_s, started = 0, 0.0, time.perf_counter()
    for batch in pq.ParquetFile(sample / "events.parquet").iter_batches(batch_size=250_000):
        valid, _ = normalise_events(batch.to_pandas(), settings.event_weights, seq, **checks_of(settings))
        valid = valid.sort_values("ts", kind="stable").assign(seq=np.arange(seq + 1, seq + len(valid) + 1))
        seq += len(valid)
        t = time.perf_counter()
        state.apply_frame(valid)
        apply_s += time.perf_counter() - t
    out = {"build_s": time.perf_counter() - started, "apply_s": apply_s, "events": seq, "rss_empty": empty}
    gc.collect()
    gc.freeze()  # as the engine does after a start that applied 100k+ events
    state.cooc.compact()
    out.update(rss_after=rss_bytes(), users=len(state.profiles), items=len(state.catalog),
               profile_bytes=state.profiles.nbytes, cooc_nnz=state.cooc.base.nnz,
               cooc_bytes=sum(a.nbytes for a in (state.cooc.base.data, state.cooc.base.indices, state.cooc.base.indptr)),
               history_bytes=sum(sum(getattr(s, f).nbytes for f in vars(s)) for s in state.histories.segments))
    service = RecommendationService(state, settings)
    users = [k for k in state.owners.ids[: len(state.owners)] if not k.startswith("s:")]
    rng = np.random.default_rng(0)
    picks, things = rng.choice(np.array(users, dtype=object), requests), rng.choice(np.array(state.catalog.item_ids.ids, dtype=object), requests)
    for i in range(50):
        service.recommend(picks[i], 10)
    out["recommend_ms"] = percentiles_ms(time_each(lambda i: service.recommend(picks[i], 10), requests))
    out["similar_ms"] = percentiles_ms(time_each(lambda i: service.similar(things[i], 10), requests))
    gc.disable()
    out["recommend_nogc_ms"] = percentiles_ms(time_each(lambda i: service.recommend(picks[i], 10), requests))
    gc.enable()
    out["recommend_cpu_ms"] = percentiles_ms(time_each(lambda i: service.recommend(picks[i], 10), requests,
                                                       clock=time.thread_time))
    started = time.perf_counter()
    path = data / "state.npz"
    out["snapshot_bytes"] = snapshot_file.write(path, to_arrays(state), {"watermark": seq})
    out["snapshot_s"] = time.perf_counter() - started
    pauses, cpu = [], []
    for _ in range(5):  # what a background snapshot pauses writers for: the fork (the header is ~1 ms)
        t, c = time.perf_counter(), time.thread_time()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pauses.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)  # the kernel's work; the rest is waiting for a core
        os.waitpid(pid, 0)
    out["fork_ms"], out["fork_cpu_ms"] = sorted(pauses), sorted(cpu)
    os._exit(dump(out))


def phase_load(data: Path) -> dict:
    from pulserec.config import Settings
    from pulserec.online import snapshot_file
    from pulserec.online.state_arrays import from_arrays

    started = time.perf_counter()
    _, arrays = snapshot_file.read(data / "state.npz")
    state = from_arrays(Settings.load(data), arrays)
    del arrays
    out = {"load_s": time.perf_counter() - started, "rss_loaded": rss_bytes(), "applied": state.applied}
    os._exit(dump(out))


def run_phase(*args: str) -> dict:
    return scale.run_phase(*args, script=__file__)


def bench(label: str, root: Path, requests: int) -> dict:
    sample, data = shop_dir(size_of(label)), root / f"data-{label}"
    data.mkdir(parents=True, exist_ok=True)
    out = {"label": label, "load_avg": os.getloadavg()[0], **run_phase("generate", str(sample), str(size_of(label)))}
    out.update(run_phase("build", str(sample), str(data), str(requests)))
    out.update(run_phase("load", str(data)))
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out), flush=True)
    return out


def report(results: list[dict]) -> None:
    gib, mib = 1024 ** 3, 1024 ** 2
    rows = []
    for r in results:
        state = r["rss_after"] - r["rss_empty"]
        rows.append([r["label"], f"{r['load_avg']:.0f}-{r['load_avg_end']:.0f}", f"{r['generate_s']:.0f}",
                     f"{r['apply_s']:.0f} ({r['events'] / r['apply_s'] / 1000:.0f}k/s)", f"{r['rss_after'] / gib:.2f} GiB",
                     f"{state / r['events']:.0f} / {state / r['users']:.0f} / {state / r['items']:.0f}",
                     f"{r['history_bytes'] / r['events']:.1f} / {r['profile_bytes'] / r['users']:.0f} / {r['cooc_bytes'] / r['items']:.0f}",
                     "{:.2f} / {:.2f} (no gc {:.2f} / {:.2f}; cpu {:.2f} / {:.2f})".format(
                         *r["recommend_ms"], *r["recommend_nogc_ms"], *r["recommend_cpu_ms"]),
                     "{:.2f} / {:.2f}".format(*r["similar_ms"]),
                     f"{r['snapshot_s']:.0f} s / {r['snapshot_bytes'] / mib:.0f} MiB", f"{r['fork_ms'][2]:.0f} ms (cpu {r['fork_cpu_ms'][2]:.0f})",
                     f"{r['load_s']:.1f} s, {r['rss_loaded'] / gib:.2f} GiB"])
    print_table(["events", "load avg", "generate s", "state apply s (rate)", "RSS", "bytes per event / user / item",
                 "history B/event, profile B/user, cooc B/item", "recommend p50/p99 ms", "similar p50/p99 ms",
                 "snapshot write / size", "fork (median of 5)", "start from snapshot"], rows)


PHASES = {"generate": lambda sample, events: dump(phase_generate(Path(sample), int(events))),
          "build": lambda sample, data, requests: phase_build(Path(sample), Path(data), int(requests)),
          "load": lambda data: phase_load(Path(data))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4M,10M")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # one phase, in the fresh interpreter run_phase started
        PHASES[args.phase[0]](*args.phase[1:])
        return
    print(f"# scale (state only): {machine()}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        results = [bench(label, Path(tmp), args.requests) for label in args.sizes.split(",")]
    report(results)


if __name__ == "__main__":
    main()
