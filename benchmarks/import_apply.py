"""The state apply of a bulk import alone: the importing process's share of `pulserec import`
(issue 17.3), without the SQLite writer.

    PYTHONPATH=<tree>/src python benchmarks/import_apply.py --shop DIR [--events N] [--digest OUT.json]

The shop's events are cut as `pulserec import` cuts them (`normalise_events` per 250k read
chunk, sorted by time, `engine/bulk.chunk_bounds`, seqs assigned), all before the timer; then
each chunk goes through `Engine.apply_stored_frame` under the engine lock, as `BulkIngest` does
once its write committed, and the bulk load's end (`end_bulk`, its last fold). Prints the apply
loop's CPU seconds and CPU microseconds per row, and the validation's (`normalise_events`) per
row beside it: the importing process's two per-row costs.
`--digest`: a SHA-1 of every array of the resulting state (`state_arrays.to_arrays`), to check
that two trees build the same state to the bit. The script uses only what both the session's
start and main have, so one copy runs against either tree (PYTHONPATH)."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.engine.bulk import CHUNK, chunk_bounds
from pulserec.ingest.importer import checks_of, import_items, normalise_events


def chunks(engine: Engine, events: Path, n: int | None) -> tuple[list, float]:
    """The chunks, and the CPU seconds of validating them (`normalise_events`, per read chunk)."""
    table = pq.read_table(events)
    raw = (table if n is None else table.slice(0, n)).to_pandas()
    parts, seq, first, validation = [], 0, True, 0.0
    for start in range(0, len(raw), 250_000):
        cpu = time.process_time()
        valid, _ = normalise_events(raw.iloc[start:start + 250_000], engine.settings.event_weights, 0,
                                    **checks_of(engine.settings))
        validation += time.process_time() - cpu
        valid = valid.sort_values("ts", kind="stable")
        for a, b in chunk_bounds(len(valid), CHUNK, first=first):
            first = False
            part = valid.iloc[a:b]
            parts.append(part.assign(seq=np.arange(seq + 1, seq + 1 + len(part))))
            seq += len(part)
    return parts, validation


def digests(engine: Engine) -> dict[str, str]:
    from pulserec.online.state_arrays import to_arrays

    return {name: f"{hashlib.sha1(np.ascontiguousarray(a).view(np.uint8).tobytes()).hexdigest()}:{a.dtype}:{a.shape}"
            for name, a in sorted(to_arrays(engine.state).items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shop", type=Path, required=True, help="a synthetic shop (items.parquet, events.parquet)")
    parser.add_argument("--events", type=int, default=None, help="the first N events only")
    parser.add_argument("--digest", type=Path, default=None)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="import-apply-"))
    try:
        engine = Engine(Settings(data_dir=data))
        import_items(engine, args.shop / "items.parquet")
        parts, validation = chunks(engine, args.shop / "events.parquet", args.events)
        rows = sum(len(p) for p in parts)
        cpu, wall = time.process_time(), time.perf_counter()
        for part in parts:
            with engine.lock:
                engine.apply_stored_frame(part)
        with engine.lock:
            ends = getattr(engine.state, "end_bulk", None)  # the bulk load's last fold (BulkIngest)
            if ends is not None:
                ends()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(json.dumps({"rows": rows, "chunks": len(parts), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                          "us_per_row": round(1e6 * cpu / rows, 2),
                          "validation_us_per_row": round(1e6 * validation / rows, 2),
                          "together_us_per_row": round(1e6 * (cpu + validation) / rows, 2)}))
        if args.digest:
            args.digest.write_text(json.dumps(digests(engine), indent=0))
        engine.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
