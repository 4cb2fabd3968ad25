"""HTTP load on MovieLens latest-small: `pulserec serve` under a mixed read/write workload.

    python benchmarks/load.py [--movielens PATH] [--seconds 20] [--warmup 5] [--workers 1,2] [--strategy NAME]

For each worker count: a copy of the imported data dir, `pulserec serve --workers N` on
127.0.0.1 as a child process, and a load generator in another process: `--connections`
keep-alive HTTP/1.1 connections in one asyncio loop, each sending its next request as soon as
the previous answer arrived. Mix: 40% recommendations, 20% similar items, 20% profiles
(reads), 20% event batches of 1-5 events (writes); recommendations ask for `--strategy` (default:
the server's default). Reported: req/s, p50/p99 latency, errors
(non-2xx or transport errors), and server RSS (all processes) after warm-up and at the end.

Two generators, same mix (`--client`):
- `wrk` (Debian's `wrk` with a Lua script; the default where `wrk` is on PATH): written in C, it
  takes a few percent of a core, so on a 2-core machine nearly both cores serve;
- `python`: HTTP/1.1 over raw asyncio streams (not httpx, which spends several times the CPU per
  request); it reports latency per request kind, but it takes most of a core of its own.
Target (issue 7): >= 1,500 req/s on 2 cores, zero errors, RSS growth < 10% after warm-up."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import machine, percentiles_ms, print_table  # noqa: E402
from pulserec.ingest.movielens import movielens_path  # noqa: E402
from pulserec.runtime.process import SRC_DIR, ServerProcess  # noqa: E402

KINDS = ("recommend", "similar", "profile", "events")
MIX = (0.4, 0.2, 0.2, 0.2)


# -- the load generator (a separate process) ---------------------------------------------------
def make_request(kind: str, rng: random.Random, users: list[str], items: list[str], host: str, query: str = "") -> bytes:
    if kind == "events":
        events = [{"user_id": rng.choice(users), "item_id": rng.choice(items), "type": rng.choice(("view", "click", "like"))}
                  for _ in range(rng.randint(1, 5))]
        body = json.dumps({"events": events}).encode()
        return (f"POST /events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    path = {"recommend": f"/users/{rng.choice(users)}/recommendations?n=10{query}",
            "similar": f"/items/{rng.choice(items)}/similar?n=10",
            "profile": f"/users/{rng.choice(users)}/profile"}[kind]
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    """One request on a keep-alive connection; returns the status (the body is read and dropped)."""
    writer.write(raw)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def drive(port: int, seconds: float, warmup: float, connections: int, users: list[str], items: list[str],
                query: str = "") -> dict:
    started = time.perf_counter()
    measure_from, stop_at = started + warmup, started + warmup + seconds
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    errors: dict[str, int] = {}

    async def connection(number: int) -> None:
        rng = random.Random(number)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (now := time.perf_counter()) < stop_at:
                kind = rng.choices(KINDS, MIX)[0]
                raw = make_request(kind, rng, users, items, f"127.0.0.1:{port}", query)
                try:
                    status = await send(reader, writer, raw)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                done = time.perf_counter()
                if now >= measure_from:
                    latencies[kind].append(done - now)
                    if status >= 300:
                        errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(k) for k in range(connections)))
    every = np.concatenate([np.asarray(v) for v in latencies.values()])
    p50, p99 = percentiles_ms(every)
    return {"requests": int(len(every)), "rps": len(every) / seconds, "p50_ms": p50, "p99_ms": p99,
            "errors": errors, "by_kind": {k: {"n": len(v), "p50_ms": percentiles_ms(v)[0], "p99_ms": percentiles_ms(v)[1]}
                                          for k, v in latencies.items() if v}}


WRK_SCRIPT = r"""
local users = {%(users)s}
local items = {%(items)s}
local types = {"view", "click", "like"}
local random = math.random

request = function()
  local r = random()
  if r < 0.4 then
    return wrk.format("GET", "/users/" .. users[random(#users)] .. "/recommendations?n=10%(query)s")
  elseif r < 0.6 then
    return wrk.format("GET", "/items/" .. items[random(#items)] .. "/similar?n=10")
  elseif r < 0.8 then
    return wrk.format("GET", "/users/" .. users[random(#users)] .. "/profile")
  end
  local events = {}
  for k = 1, random(5) do
    events[k] = string.format('{"user_id":"%%s","item_id":"%%s","type":"%%s"}',
                              users[random(#users)], items[random(#items)], types[random(3)])
  end
  return wrk.format("POST", "/events", {["Content-Type"] = "application/json"},
                    '{"events":[' .. table.concat(events, ",") .. ']}')
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\nRESULT {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_drive(port: int, seconds: float, warmup: float, connections: int, ids: Path, query: str = "") -> dict:
    """Warm up, then measure, with `wrk` (one thread: the cores are for the server)."""
    sample = json.loads(ids.read_text())
    script = ids.with_suffix(".lua")
    quoted = lambda values: ",".join(json.dumps(v) for v in values)  # noqa: E731 - JSON strings are Lua strings here
    script.write_text(WRK_SCRIPT % {"users": quoted(sample["users"]), "items": quoted(sample["items"]), "query": query})

    def run(duration: float) -> dict:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
                              "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
        return json.loads(out.split("RESULT ", 1)[1])

    if warmup > 0:
        run(warmup)
    r = run(seconds)
    errors = {kind: r[kind] for kind in ("non_2xx", "connect", "read", "write", "timeout") if r[kind]}
    return {"requests": r["requests"], "rps": r["requests"] / (r["duration_us"] / 1e6),
            "p50_ms": r["p50_us"] / 1000.0, "p99_ms": r["p99_us"] / 1000.0, "errors": errors}


def generator_main(args: argparse.Namespace) -> None:
    query = f"&strategy={quote(args.strategy)}" if args.strategy else ""
    if args.client == "wrk":
        print(json.dumps(wrk_drive(args.port, args.seconds, args.warmup, args.connections, Path(args.ids), query)))
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sample = json.loads(Path(args.ids).read_text())
    result = asyncio.run(drive(args.port, args.seconds, args.warmup, args.connections, sample["users"], sample["items"], query))
    print(json.dumps(result))


# -- the orchestrator ----------------------------------------------------------------------------
def import_movielens(source: Path, data_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "pulserec.cli.main", "import", "--movielens", str(source), "--data-dir", str(data_dir)],
                   check=True, env={"PYTHONPATH": str(SRC_DIR), "PATH": "/usr/bin:/bin"}, capture_output=True)


def id_sample(source: Path, path: Path) -> None:
    import pandas as pd

    ratings = pd.read_csv(source / "ratings.csv", dtype={"userId": str, "movieId": str})
    popular = ratings["movieId"].value_counts().index[:2000].tolist()  # writes and lookups favour known movies
    path.write_text(json.dumps({"users": sorted(ratings["userId"].unique().tolist()), "items": popular}))


def run_config(base: Path, work: Path, ids: Path, workers: int, args: argparse.Namespace) -> dict:
    data_dir = work / f"data-w{workers}"
    shutil.copytree(base, data_dir)
    with ServerProcess(data_dir, workers=workers, log_path=work / f"server-w{workers}.log") as server:
        command = [sys.executable, __file__, "--generate", "--port", str(server.port), "--ids", str(ids),
                   "--seconds", str(args.seconds), "--warmup", str(args.warmup), "--connections", str(args.connections),
                   "--client", args.client] + (["--strategy", args.strategy] if args.strategy else [])
        generator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, int]] = []

        def sample_rss() -> None:
            while generator.poll() is None:
                samples.append((time.monotonic(), server.rss_bytes()))
                time.sleep(0.5)

        started = time.monotonic()
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        out, _ = generator.communicate(timeout=args.warmup + args.seconds + 120)
        sampler.join()
        result = json.loads(out.strip().splitlines()[-1])
        after_warmup = [rss for t, rss in samples if t - started >= args.warmup]
        result["rss_start_mib"] = after_warmup[0] / 2**20 if after_warmup else float("nan")
        result["rss_end_mib"] = after_warmup[-1] / 2**20 if after_warmup else float("nan")
        result["rss_peak_mib"] = max(after_warmup) / 2**20 if after_warmup else float("nan")
        result["server_errors_logged"] = server.log_tail(200).count("Traceback")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="load generator (default: wrk where it is installed)")
    parser.add_argument("--strategy", default=None, help="model the recommendations ask for (default: the server's default)")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generator_main(args)
        return
    source = movielens_path(args.movielens)
    print(f"machine: {machine()}; client {args.client}, {args.connections} connections, {args.warmup:.0f} s warm-up + "
          f"{args.seconds:.0f} s measured, strategy {args.strategy or 'default'}")
    with tempfile.TemporaryDirectory(prefix="pulserec-load-") as tmp:
        work = Path(tmp)
        base, ids = work / "imported", work / "ids.json"
        import_movielens(source, base)
        id_sample(source, ids)
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            load_before = os.getloadavg()[0]  # other processes on the machine take cores too
            r = run_config(base, work, ids, workers, args)
            r["loadavg_1m_before"] = load_before
            growth = 100.0 * (r["rss_end_mib"] / r["rss_start_mib"] - 1.0)
            rows.append([workers, round(r["rps"]), r["p50_ms"], r["p99_ms"], sum(r["errors"].values()),
                         r["rss_start_mib"], r["rss_end_mib"], f"{growth:+.1f}%"])
            print(json.dumps({"workers": workers, **r}))
        print_table(["workers", "req/s", "p50 ms", "p99 ms", "errors", "RSS after warm-up MiB", "RSS end MiB", "RSS growth"], rows)


if __name__ == "__main__":
    main()
