"""The online state alone at shop sizes (issue 17.2/17.5): memory, serving latency, snapshot
write and load, without the SQLite log.

    python benchmarks/scale_state.py [--sizes 4M,10M] [--requests 2000]

`benchmarks/scale.py` runs the whole pipeline (generate, `import` into SQLite + state, restart
from a snapshot + tail and by full replay); on the shared 2-core box its SQLite writes make a
10M-event run take far longer than a polite turn of the benchmark lock. This script builds the
same in-memory state the import builds from all but the last TAIL events (the importer's own
validation, then `OnlineState.apply_frame` per 250k-row chunk, catalogue from the items file:
the "state apply" time is what a full replay costs the state), then in that process: RSS and
bytes per component, recommend / similar latency through the `RecommendationService` the
engine serves with (p50/p99 by wall clock, without the garbage collector, and in thread CPU
time), a snapshot written as the engine writes one, and --snapshots background snapshots started
while a writer thread applies events (the lock held for the fork, the writers' worst stall);
then, in a fresh process, the start from that snapshot + the TAIL events. Per size: users =
events / 10, items = events / 100, as in scale.py; the generated shop is cached (scale.py)."""

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
from scale import TAIL, dump, phase_generate, rss_bytes, shop_dir, size_of


def _items(path: Path) -> list:
    import pandas as pd

    from pulserec.records import ItemRecord

    frame = pd.read_parquet(path)
    return [ItemRecord(item_id=r.item_id, title=r.title, description=r.description, category=r.category,
                       tags=tuple(t for t in r.tags.split("|") if t), price=float(r.price))
            for r in frame.itertuples(index=False)]


def _frames(path: Path, settings, seq: int):
    """The importer's own validation of each 250k-row chunk, with log sequence numbers."""
    import pyarrow.parquet as pq

    from pulserec.ingest.importer import checks_of, normalise_events

    for batch in pq.ParquetFile(path).iter_batches(batch_size=250_000):
        valid, _ = normalise_events(batch.to_pandas(), settings.event_weights, seq, **checks_of(settings))
        valid = valid.sort_values("ts", kind="stable").assign(seq=np.arange(seq + 1, seq + len(valid) + 1))
        seq += len(valid)
        yield valid


def phase_build(sample: Path, data: Path, requests: int, rounds: int, switch_s: float) -> dict:
    from pulserec.config import Settings
    from pulserec.engine.heap import trim_heap
    from pulserec.online import snapshot_file
    from pulserec.online.state import OnlineState
    from pulserec.online.state_arrays import to_arrays
    from pulserec.recommend.service import RecommendationService

    from pulserec import background

    background.SWITCH_INTERVAL_S = switch_s
    settings = Settings.load(data)
    state = OnlineState(settings)
    empty = rss_bytes()
    state.catalog.upsert_many(_items(sample / "items.parquet"))
    apply_s, started = 0.0, time.perf_counter()
    for valid in _frames(sample / "head.parquet", settings, 0):  # all but the TAIL the start replays
        t = time.perf_counter()
        state.apply_frame(valid)
        apply_s += time.perf_counter() - t
    seq = state.last_seq
    out = {"build_s": time.perf_counter() - started, "apply_s": apply_s, "events": seq, "rss_empty": empty,
           "rss_built": rss_bytes()}
    gc.collect()
    gc.freeze()  # as the engine does after a start that applied 100k+ events
    trim_heap()  # likewise (engine/heap.py)
    state.cooc.compact()
    out.update(rss_after=rss_bytes(), users=len(state.profiles), items=len(state.catalog),
               profile_bytes=state.profiles.nbytes, cooc_nnz=state.cooc.base.nnz,
               cooc_bytes=sum(a.nbytes for a in (state.cooc.base.data, state.cooc.base.indices, state.cooc.base.indptr)),
               history_bytes=sum(sum(getattr(s, f).nbytes for f in vars(s)) for s in state.histories.segments))
    out.update(_latency(state, RecommendationService(state, settings), requests))
    started = time.perf_counter()
    out["snapshot_bytes"] = snapshot_file.write(data / "state.npz", to_arrays(state), {"watermark": seq})
    out["snapshot_s"] = time.perf_counter() - started
    out.update(_background_snapshot(state, settings, sample, rounds))
    os._exit(dump(out))


def _latency(state, service, requests: int) -> dict:
    """recommend / similar p50/p99 by wall clock, recommend without the collector and in CPU time."""
    users = [k for k in state.owners.ids[: len(state.owners)] if not k.startswith("s:")]
    rng = np.random.default_rng(0)
    # A fresh draw of users per pass: item-kNN keeps a user's long-term part between their
    # requests (models/long_term_cache.py); the same users again are timed apart (returning).
    first, picks, quiet, cpu = (rng.choice(np.array(users, dtype=object), requests) for _ in range(4))
    things = rng.choice(np.array(state.catalog.item_ids.ids, dtype=object), requests)
    # The first pass after the build is timed apart: its tail is one-off costs (the first
    # collection after gc.freeze, page faults of the heap the trim handed back), measured at 4M
    # as p99 6.8 ms and one 105 ms request against 3.2 ms on the next pass.
    out = {"recommend_cold_ms": percentiles_ms(time_each(lambda i: service.recommend(first[i], 10), requests)),
           "recommend_ms": percentiles_ms(time_each(lambda i: service.recommend(picks[i], 10), requests)),
           "recommend_returning_ms": percentiles_ms(time_each(lambda i: service.recommend(picks[i], 10), requests)),
           "similar_ms": percentiles_ms(time_each(lambda i: service.similar(things[i], 10), requests))}
    gc.disable()
    out["recommend_nogc_ms"] = percentiles_ms(time_each(lambda i: service.recommend(quiet[i], 10), requests))
    gc.enable()
    out["recommend_cpu_ms"] = percentiles_ms(time_each(lambda i: service.recommend(cpu[i], 10), requests,
                                                       clock=time.thread_time))
    return out


#: Seconds a writer sleeps between the events it applies (~2k writes/s: a busy shop).
PACE_S = 0.0005
#: Seconds of writes timed with no snapshot before the first (the writer path alone).
QUIET_S = 5.0


def _background_snapshot(state, settings, sample: Path, rounds: int) -> dict:
    """What a background snapshot pauses writers for: a writer thread applies the tail's events
    one by one under a lock (as the engine's write path does) while `rounds` background snapshots
    (`Snapshots.write_in_background`, the engine's own, started under that lock) are written.
    First QUIET_S seconds of writes alone, then a co-occurrence compaction started as the
    per-event path starts one at its threshold (on a thread at this size) and timed until the
    writer swapped it in. Reports the lock hold of the start (wall and CPU), and over each whole
    snapshot (start to file renamed): the writers' worst stall and p99, and the peak RSS above
    the RSS before it (sampled every 20 ms); the writers' p99 and worst otherwise; each fold a
    helper thread ran (pulserec/background.py) and what the writer's worst was beside it; every
    cyclic-GC collection (generation, length) and how many of the writer's gaps hold one. A
    stall is also given less the time the writer waited for a CPU (the kernel's run delay of
    its thread: other processes' load, not this one's). The tail's events are applied here to a
    state the start then does not use (the snapshot on disk is the head's)."""
    import itertools
    import threading

    import pandas as pd

    from pulserec import background
    from pulserec.events import Event
    from pulserec.online.snapshots import Snapshots

    tail = pd.read_parquet(sample / "tail.parquet")
    events = [Event(event_id=f"bg{i}", user_id=u, item_id=it if isinstance(it, str) else None, type=t, ts=float(ts), value=None if v != v else v,
                    query=q if isinstance(q, str) else None) for i, (u, it, t, ts, v, q) in
              enumerate(zip(tail["user_id"], tail["item_id"], tail["type"], tail["ts"], tail["value"], tail["query"]))]
    lock, stop, done, waited = threading.Lock(), threading.Event(), [], []
    folds = _timed_folds(background)
    collections = _Collections()

    def writer() -> None:
        seq = state.last_seq
        delay = _run_delay()
        for event in itertools.cycle(events):  # the tail again if the snapshots outlast it
            if stop.is_set():
                break
            seq += 1
            with lock:
                state.apply(event, seq)
            done.append(time.perf_counter())
            waited.append(delay())
            time.sleep(PACE_S)

    peaks: list[int] = []
    sampling = threading.Event()

    def sampler() -> None:  # the RSS while a snapshot is written
        while not stop.is_set():
            if sampling.is_set():
                peaks[-1] = max(peaks[-1], rss_bytes())
            time.sleep(0.02)

    tags = state.profiles.keyed["tags"]
    out = {"tags_delta_at_start": [len(tags.delta[0]), tags.delta_limit()]}
    snapshots = Snapshots(settings)  # <data>/snapshots/, beside the state.npz the start loads
    threads = [threading.Thread(target=writer), threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    time.sleep(QUIET_S)
    compacting = _compaction(state, lock)
    holds, cpu, windows, starting, rss_before, write_s, written = [], [], [], [], [], [], []
    for _ in range(rounds):
        time.sleep(0.5)
        rss_before.append(rss_bytes())
        peaks.append(rss_before[-1])
        sampling.set()
        t, c = time.perf_counter(), time.thread_time()
        with lock:
            snapshots.write_in_background(state, {"watermark": state.last_seq, "applied": state.applied})
            holds.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
        starting.append((t, time.perf_counter()))
        snapshots.wait()
        sampling.clear()
        windows.append((t, time.perf_counter()))
        write_s.append(windows[-1][1] - t)
        written.append((snapshots.last_error, (snapshots.latest or {}).get("bytes")))  # it did write it
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    gc.callbacks.remove(collections.record)
    out.update(_stalls(np.asarray(done), np.asarray(waited), windows, starting, folds, compacting))
    out.update(_collector(collections, np.asarray(done), windows))
    out.update(fork_ms=sorted(holds), fork_cpu_ms=sorted(cpu), bg_write_s=write_s, bg_rss_before=rss_before,
               bg_rss_peak_over=[p - b for p, b in zip(peaks, rss_before)], bg_written=written)
    return out


def _run_delay():
    """A reader of the calling thread's run delay so far (seconds it was runnable but waited
    for a CPU: /proc/thread-self/schedstat's second field); 0 where the kernel gives none."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: 0.0
    return lambda: int(os.pread(fd, 128, 0).split()[1]) / 1e9


def _timed_folds(background) -> list[list]:
    """[name, started, ended] of every fold a helper thread runs from now on (its compute wrapped)."""
    folds: list[list] = []
    fold_class = background.Fold

    class Timed(fold_class):
        def __init__(self, name, compute, *args):
            entry = [name, time.perf_counter(), None]
            folds.append(entry)

            def timed(*a):
                try:
                    return compute(*a)
                finally:
                    entry[2] = time.perf_counter()
            super().__init__(name, timed, *args)

    from pulserec.online import cooccurrence
    from pulserec.profiles import keyed
    for module in (cooccurrence, keyed):
        module.Fold = Timed
    return folds


class _Collections:
    """Every cyclic-GC collection from now on (any thread): generation, start, end (gc.callbacks),
    and how many objects the collector tracks outside the frozen ones (gc.freeze) now."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, float, float]] = []
        self.unfrozen_at_start = len(gc.get_objects())
        self._started = 0.0
        gc.callbacks.append(self.record)

    def record(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.spans.append((info["generation"], self._started, time.perf_counter()))


def _collector(collections: _Collections, ends: np.ndarray, windows) -> dict:
    """Whether the writers' stalls are the collector's: collections per generation, the longest
    of each, and of the writer's gaps over 2 ms (during snapshots / otherwise) how many hold one."""
    spans = np.array([(g, a, b) for g, a, b in collections.spans]).reshape(-1, 3)
    gaps, starts = np.diff(ends) - PACE_S, ends[:-1]
    during = np.zeros(len(gaps), dtype=bool)
    for a, b in windows:
        during |= (starts <= b) & (ends[1:] >= a)
    with_gc = np.zeros(len(gaps), dtype=bool)
    for _, a, b in spans:
        with_gc |= (starts < b) & (ends[1:] > a)
    long = gaps > 0.002
    return {"gc_collections": [int((spans[:, 0] == g).sum()) for g in range(3)],
            "gc_worst_ms": [float(((spans[:, 2] - spans[:, 1]) * 1000)[spans[:, 0] == g].max(initial=0.0)) for g in range(3)],
            "gc_unfrozen": [collections.unfrozen_at_start, len(gc.get_objects())],
            "gaps_over_2ms_with_gc": [[int((long & d & with_gc).sum()), int((long & d).sum())] for d in (during, ~during)]}


def _compaction(state, lock) -> tuple[float, float]:
    """Start the co-occurrence compaction the per-event path starts at its threshold, and the
    span until the writer put its base in place (the first write after the thread's end)."""
    started = time.perf_counter()
    with lock:
        state.cooc.compact_soon()
    while True:
        with lock:
            if state.cooc._fold is None:
                return started, time.perf_counter()
        time.sleep(0.005)


def _stalls(ends: np.ndarray, waited: np.ndarray, windows, starting, folds, compacting) -> dict:
    """A writer's stall is the gap between two of its writes beyond its pace: it includes the
    time it could not even run (the fork holds the GIL; the writing thread holds it between
    its pauses), which a timer around the lock misses; `waited` takes off its waits for a CPU."""
    gaps, starts = np.diff(ends) - PACE_S, ends[:-1]
    own = gaps - np.diff(waited)

    def overlapping(spans) -> np.ndarray:
        mask = np.zeros(len(gaps), dtype=bool)
        for a, b in spans:
            mask |= (starts <= b) & (ends[1:] >= a)
        return mask

    def worst(mask, values=gaps) -> float:
        return float(values[mask].max(initial=0.0)) * 1000

    def p99(mask, values=gaps) -> float:
        return float(np.percentile(values[mask], 99)) * 1000 if mask.any() else float("nan")

    during, at_start = overlapping(windows), overlapping(starting)
    folding = overlapping([(a, b if b is not None else ends[-1]) for _, a, b in folds])
    compaction = overlapping([compacting])
    quiet = ~during & ~folding & ~compaction
    return {"writes": len(ends), "writes_during": int(during.sum()),
            "writer_stall_ms": worst(during), "writer_stall_start_ms": worst(at_start),  # over the lock hold
            "writer_stall_after_ms": worst(during & ~at_start),  # while it is written
            "writer_during_p99_ms": p99(during), "writer_p99_ms": p99(quiet), "writer_max_ms": worst(quiet),
            "own_stall_ms": worst(during, own), "own_during_p99_ms": p99(during, own), "own_max_ms": worst(quiet, own),
            "folds": [(name, round(((b or ends[-1]) - a) * 1000, 1)) for name, a, b in folds],
            "writer_fold_max_ms": worst(folding), "own_fold_max_ms": worst(folding, own),
            "compaction_ms": (compacting[1] - compacting[0]) * 1000, "writer_compaction_max_ms": worst(compaction)}


def phase_load(data: Path, sample: Path) -> dict:
    """A start from the snapshot: load it, then apply the TAIL events after its watermark."""
    from pulserec.config import Settings
    from pulserec.online import snapshot_file
    from pulserec.online.state_arrays import from_arrays

    settings = Settings.load(data)
    started = time.perf_counter()
    _, arrays = snapshot_file.read(data / "state.npz")
    state = from_arrays(settings, arrays)
    del arrays
    loaded = time.perf_counter() - started
    for frame in _frames(sample / "tail.parquet", settings, state.last_seq):
        state.apply_frame(frame)
    out = {"load_s": loaded, "start_s": time.perf_counter() - started, "rss_loaded": rss_bytes(), "applied": state.applied}
    os._exit(dump(out))


def run_phase(*args: str) -> dict:
    return scale.run_phase(*args, script=__file__)


def bench(label: str, root: Path, requests: int, rounds: int, switch_s: float, start: bool) -> dict:
    sample, data = shop_dir(size_of(label)), root / f"data-{label}"
    data.mkdir(parents=True, exist_ok=True)
    out = {"label": label, "load_avg": os.getloadavg()[0], **run_phase("generate", str(sample), str(size_of(label)))}
    out.update(run_phase("build", str(sample), str(data), str(requests), str(rounds), str(switch_s)))
    print(json.dumps(out), flush=True)  # kept if the start is cut short (a turn of the bench lock)
    out.update(run_phase("load", str(data), str(sample)) if start else {"load_s": float("nan"), "start_s": float("nan"),
                                                                         "rss_loaded": 0, "applied": 0})
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
                     "{:.2f} / {:.2f} (first pass {:.2f} / {:.2f}; no gc {:.2f} / {:.2f}; cpu {:.2f} / {:.2f}; returning {:.2f} / {:.2f})".format(
                         *r["recommend_ms"], *r["recommend_cold_ms"], *r["recommend_nogc_ms"], *r["recommend_cpu_ms"],
                         *r["recommend_returning_ms"]),
                     "{:.2f} / {:.2f}".format(*r["similar_ms"]),
                     f"{r['snapshot_s']:.0f} s / {r['snapshot_bytes'] / mib:.0f} MiB",
                     f"{r['fork_ms'][len(r['fork_ms']) // 2]:.1f} ms (cpu {r['fork_cpu_ms'][len(r['fork_cpu_ms']) // 2]:.1f}); "
                     f"writers' worst {r['writer_stall_ms']:.1f} ms (less CPU waits {r['own_stall_ms']:.1f}), p99 "
                     f"{r['writer_during_p99_ms']:.1f} ms during; otherwise p99 {r['writer_p99_ms']:.1f}, worst "
                     f"{r['writer_max_ms']:.1f} ms; beside folds on threads worst {r['writer_fold_max_ms']:.1f} ms "
                     f"({', '.join(f'{n} {ms:.0f} ms' for n, ms in r['folds'])}); RSS +{max(r['bg_rss_peak_over']) / mib:.0f} MiB; "
                     f"gc collections {r['gc_collections']} (worst {', '.join(f'{ms:.1f}' for ms in r['gc_worst_ms'])} ms), "
                     f"gaps > 2 ms holding one: during {'/'.join(map(str, r['gaps_over_2ms_with_gc'][0]))}, "
                     f"otherwise {'/'.join(map(str, r['gaps_over_2ms_with_gc'][1]))}",
                     f"{r['start_s']:.1f} s ({r['load_s']:.1f} load + {TAIL // 1000}k tail), {r['rss_loaded'] / gib:.2f} GiB"])
    print_table(["events", "load avg", "generate s", "state apply s (rate)", "RSS", "bytes per event / user / item",
                 "history B/event, profile B/user, cooc B/item", "recommend p50/p99 ms", "similar p50/p99 ms",
                 "snapshot write / size", "background snapshot: lock held (median)",
                 "start from snapshot + tail"], rows)


PHASES = {"generate": lambda sample, events: dump(phase_generate(Path(sample), int(events))),
          "build": lambda sample, data, requests, rounds, switch: phase_build(Path(sample), Path(data), int(requests), int(rounds),
                                                                              float(switch)),
          "load": lambda data, sample: phase_load(Path(data), Path(sample))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4M,10M")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--snapshots", type=int, default=3, help="background snapshots timed (each writes a whole one)")
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--switch-interval", type=float, default=0.0005,
                        help="the interpreter's switch interval while a snapshot is written (background.SWITCH_INTERVAL_S)")
    parser.add_argument("--no-start", action="store_true", help="skip the start from the snapshot (a shorter turn)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # one phase, in the fresh interpreter run_phase started
        PHASES[args.phase[0]](*args.phase[1:])
        return
    print(f"# scale (state only): {machine()}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        results = [bench(label, Path(tmp), args.requests, args.snapshots, args.switch_interval, not args.no_start)
                   for label in args.sizes.split(",")]
    report(results)


if __name__ == "__main__":
    main()
