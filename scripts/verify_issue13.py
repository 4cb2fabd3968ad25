"""Issue 13 end to end: each of its 19 reproductions against a live `pulserec serve` on 127.0.0.1.

A scratch data dir gets MovieLens (ml-latest-small) through `pulserec import`, then a server
with keys, pseudonymised ids, short timeouts and configured limits is started as a child
process (`runtime/process.py`), and every item's original reproduction is run against it by
HTTP (plus the CLI for 5, 12, 13 and 19). Prints one line per check: item, PASS/FAIL, what was
seen. Exit status 1 if any check failed. Takes ~3-6 minutes on the 2-core box (an ALS fit).

    python scripts/verify_issue13.py --movielens /work/shared/data/ml-latest-small --work /tmp/e2e13
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from pulserec.runtime.process import ServerProcess
from pulserec.store.pseudonym import Pseudonymizer

ADMIN, READER = "e2e-admin-key-0123456789abcdef", "e2e-read-key-0123456789abcdef"
PSEUDONYM_KEY = "e2e-pseudonym-key-0123456789abcdef0123"
SETTINGS = f"""api_keys = ["{ADMIN}"]
read_keys = ["{READER}"]
pseudonymize_users = true
header_timeout = 2.0
max_id_len = 64
max_n = 100
auto_train_min_events = 0
"""
RESULTS: list[tuple[str, bool, str]] = []


def check(item: str, ok: bool, seen: str) -> None:
    RESULTS.append((item, bool(ok), seen))
    print(f"{item:>5}  {'PASS' if ok else 'FAIL'}  {seen}", flush=True)


def cli(*args: str, data_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PULSEREC_PSEUDONYM_KEY": PSEUDONYM_KEY, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "pulserec.cli.main", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def files_with(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def data_quality(http: httpx.Client) -> None:
    profile = http.get("/users/1/profile").json()  # first: before a live event moves the clock
    interests = [e["score"] for kind in profile.get("interests", {}).values() for e in kind]
    trending = http.get("/users/nobody-new/recommendations", params={"strategy": "trending", "n": 10}).json()["items"]
    check("3", interests and max(interests) > 1 and len(trending) == 10 and trending[0]["score"] > 0,
          f"after import: user 1 interest max {max(interests, default=0):.4g} (as of {profile.get('interests_as_of')}); "
          f"trending top {trending[0]['title'][:24] if trending else None}")
    body = {"user_id": "2", "item_id": "no-such-item", "type": "view"}
    http.post("/events", json=body)
    similar = http.get("/items/260/similar", params={"n": 10}).json()["items"]
    check("1", "no-such-item" not in [r["item_id"] for r in similar] and all(r["title"] for r in similar),
          f"/items/260/similar top: {[r['title'][:18] for r in similar[:3]]}; unknown id not served")
    http.put("/items/spam-item", json={"title": "Spam"})
    http.post("/events", json={"events": [{"user_id": "spammer", "item_id": "260", "type": "view"}]
                               + [{"user_id": "spammer", "item_id": "spam-item", "type": "view"}] * 50})
    similar = [r["item_id"] for r in http.get("/items/260/similar", params={"n": 100}).json()["items"]]
    check("1", "spam-item" not in similar, "one user's 51 views: spam-item not a neighbour of Star Wars (min_support)")
    codes = [http.post("/events", json={**b, "user_id": "v1"}).status_code for b in
             ({"item_id": "1", "type": "rating"}, {"item_id": "1", "type": "rating", "value": 99},
              {"item_id": "1", "type": "purchase", "value": -5})]
    named = http.post("/events", json={"user_id": "v1", "item_id": "1", "type": "rating", "value": 99}).json()
    check("2", codes == [422, 422, 422] and "value" in json.dumps(named), f"rating none/99, purchase -5: {codes}")
    reasons = [r["reason"] for r in http.get("/users/1/recommendations", params={"n": 10}).json()["items"]]
    dates = sum("20 Dates" in (r or "") for r in reasons)
    check("4", dates <= 2 and len(set(reasons)) >= 3, f"'20 Dates' explains {dates}/10; {len(set(reasons))} distinct reasons")


def evaluation(data_dir: Path, movielens: str) -> None:
    out = cli("evaluate", "--models", "popular", data_dir=data_dir).stdout
    users = [line for line in out.splitlines() if "test users" in line.lower() or "users" in line.lower()][:2]
    check("5", "95%" in out or "CI" in out, f"pulserec evaluate: {' | '.join(u.strip()[:90] for u in users)}")
    modes = subprocess.run([sys.executable, "-m", "pulserec.cli.main", "replay", "--help"], capture_output=True,
                           text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    check("5", "retrained" in modes, "replay offers the retrained baseline (same model retrained, no online updates)")


def privacy(http: httpx.Client, data_dir: Path, server: ServerProcess) -> str:
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(http.post("/admin/rebuild").status_code)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deleted = http.delete("/users/414").json()
    check("6", sorted(answers)[-1] == 409 and http.get("/users/414/profile").status_code == 404,
          f"two rebuilds: {sorted(answers)}; DELETE /users/414 removed {deleted.get('deleted_events')}; profile 404")
    victim = "victim-e2e-7d41"
    http.post("/events", json={"events": [{"user_id": victim, "item_id": i, "type": "rating", "value": 5,
                                           "session_id": "sess-raw-9q"} for i in ("1", "50", "260")]})
    job = http.post("/models/als/train")
    again = http.post("/models/als/train")
    running = [j["id"] for j in again.json().get("running", [])]
    check("8", job.status_code == 202 and again.status_code == 409 and running == [job.json()["job_id"]],
          f"train: {job.status_code}, again: {again.status_code} naming the running job {running}")
    job_id = job.json()["job_id"]
    deadline = time.monotonic() + 600
    while http.get(f"/jobs/{job_id}").json()["state"] == "running" and time.monotonic() < deadline:
        time.sleep(1)
    state = http.get(f"/jobs/{job_id}").json()["state"]
    pseudonym = Pseudonymizer(PSEUDONYM_KEY.encode())(victim)  # what the store and the model hold
    before = files_with(data_dir, pseudonym.encode())  # the check below can find it
    http.delete(f"/users/{victim}")
    while any(j["state"] == "running" for j in http.get("/jobs").json()["jobs"]) and time.monotonic() < deadline:
        time.sleep(1)
    search = http.get("/dashboard/api/search", params={"q": "victim"}).json()["users"]
    wal = data_dir / "pulserec.db-wal"
    held = files_with(data_dir, victim.encode()) + files_with(data_dir, pseudonym.encode())
    check("7", state == "succeeded" and "models/als.model" in before and not search and not held,
          f"ALS job {state}; pseudonym before DELETE in {before}; after it and its retrain: search {search}, files holding "
          "the id or its pseudonym: "
          f"{held or 'none'}, WAL {wal.stat().st_size if wal.exists() else 0} B")
    return victim


def keys(url: str, data_dir: Path, server: ServerProcess) -> None:
    with httpx.Client(base_url=url, timeout=30) as anon:
        codes = {p: anon.get(p).status_code for p in ("/users/1/profile", "/dashboard/api/search?q=1", "/feedback",
                                                       "/experiments", "/metrics", "/users/1/recommendations")}
        public = {p: anon.get(p).status_code for p in ("/health", "/health/ready")}
        probe = anon.get("/dashboard/api/session").json()
    check("9", all(c == 401 for c in codes.values()) and set(public.values()) == {200} and probe["role"] == "none"
          and probe["keys_required"], f"no key: {codes}; public: {public}; dashboard session probe {probe} (its "
          "login: tests/serving/test_dashboard.py, headless chromium)")
    with httpx.Client(base_url=url, timeout=30, headers={"x-api-key": READER}) as reader:
        check("9", reader.get("/users/1/recommendations").status_code == 200 and reader.post("/admin/rebuild").status_code == 403,
              "read key: recommendations 200, admin 403")
    with httpx.Client(base_url=url, timeout=30, headers={"x-api-key": ADMIN}) as http:
        http.put("/users/alice.pseudo%40example.com", json={"attrs": {"plan": "pro"}})
    log_text = server.log_path.read_text(errors="replace")
    check("10", not (data_dir / "pseudonym.key").exists() and "alice.pseudo" not in log_text
          and not files_with(data_dir, b"alice.pseudo") and not files_with(data_dir, b"sess-raw-9q"),
          "no key file in the data dir; raw user and session ids in neither the access log nor any file")


def models(data_dir: Path, http: httpx.Client) -> None:
    files = sorted(p.name for p in (data_dir / "models").iterdir())
    loadable = []
    for path in (data_dir / "models").glob("*.model"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                loadable.append(bool(archive.files))
        except ValueError:
            loadable.append(False)
    (data_dir / "models" / "evil.model").write_bytes(pickle.dumps({"this": "is a pickle"}))
    time.sleep(3)
    served = [m["name"] for m in http.get("/models").json()["models"]]
    check("11", all(loadable) and not any(f.endswith(".pkl") for f in files) and "evil" not in served,
          f"models/: {files}; every .model opens with allow_pickle=False; a planted pickle is not served")
    (data_dir / "models" / "evil.model").unlink()
    als = next(m for m in http.get("/models").json()["models"] if m["name"] == "als")
    check("19", bool(als.get("trained_at")) and "events" in json.dumps(als), f"GET /models als: trained_at {als.get('trained_at')}")


def robustness(http: httpx.Client, url: str, data_dir: Path) -> None:
    raw = '{"attrs": {"k": "\\udc00"}}'
    put = http.put("/items/surrogate-x", content=raw, headers={"content-type": "application/json"})
    got = http.get("/items/surrogate-x")
    check("14", put.status_code == 422 and got.status_code == 404, f"PUT lone surrogate: {put.status_code}; GET: {got.status_code}")
    storage_failure(http, data_dir)
    spec = http.get("/openapi.json").json()
    from openapi_spec_validator import validate

    validate(spec)
    put_exp = spec["paths"]["/experiments/{name}"]["put"]["responses"]
    check("16", "EventIn" in spec["components"]["schemas"] and "409" in put_exp, "document validates; EventIn present; PUT /experiments documents 409")
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = sock.recv(4096)
        waited = time.monotonic() - started
    check("17", waited < 4 and b"408" in answer, f"half-sent headers answered after {waited:.1f}s: {answer[:40]!r}")
    codes = [http.post("/events", json={"user_id": "s1", "item_id": "1", "type": "view", "timestamp": "1700000000"}).status_code,
             http.post("/events", json={"user_id": "x" * 65, "item_id": "1", "type": "view"}).status_code,
             http.get("/users/1/recommendations", params={"n": 101}).status_code]
    check("18", codes == [422, 422, 422], f"string timestamp, 65-char id (max_id_len 64), n=101 (max_n 100): {codes}")


def storage_failure(http: httpx.Client, data_dir: Path) -> None:
    """The database files made immutable (chattr +i: even root cannot write them), then writable again."""
    files = [p for p in (data_dir / "pulserec.db", data_dir / "pulserec.db-wal") if p.exists()]
    event = {"user_id": "disk", "item_id": "1", "type": "view"}
    subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        failed = http.post("/events", json=event)
        ready = http.get("/health/ready")
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
    body = failed.json() if failed.headers.get("content-type", "").startswith("application/json") else {}
    deadline = time.monotonic() + 30
    while http.get("/health/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    again = http.post("/events", json=event)
    check("15", failed.status_code in (503, 507) and body.get("cause") and ready.status_code == 503
          and again.status_code == 200, f"read-only store: {failed.status_code} cause {body.get('cause')!r}, "
          f"/health/ready {ready.status_code}; writable again: {again.status_code}")


def stops(server: ServerProcess, data_dir: Path, http: httpx.Client, work: Path) -> None:
    count = http.get("/stats").json()
    server.process.send_signal(15)  # SIGTERM to the server itself (uvicorn drains)
    code = server.process.wait(timeout=60)
    wal = data_dir / "pulserec.db-wal"
    alone = work / "db-alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(data_dir / "pulserec.db", alone / "pulserec.db")
    stored = sqlite3.connect(alone / "pulserec.db").execute("SELECT COUNT(*) FROM events").fetchone()[0]
    check("12", code == 0 and (not wal.exists() or wal.stat().st_size == 0) and stored == count.get("events_stored", stored),
          f"SIGTERM exit {code}; WAL {wal.stat().st_size if wal.exists() else 'gone'}; pulserec.db alone holds {stored:,} events")
    broken = work / "zero-db"
    shutil.copytree(data_dir, broken, dirs_exist_ok=True)
    (broken / "pulserec.db").write_bytes(b"")
    refused = cli("stats", data_dir=broken, timeout=120)
    text = refused.stdout + refused.stderr
    check("13", refused.returncode != 0 and "up to seq 0, but" in text,
          f"0-byte pulserec.db: exit {refused.returncode}: {text.strip().splitlines()[-1][:100] if text.strip() else ''}")
    trained = cli("train", "--model", "als", "-p", "factors=8", "-p", "iterations=2", data_dir=alone, timeout=300)
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.runtime.insights import model_list

    engine = Engine(Settings.load(alone, auto_train_min_events=0))
    try:
        als = next((m for m in model_list(engine) if m["name"] == "als"), {})
    finally:
        engine.close()
    check("19", trained.returncode == 0 and bool(als.get("trained_at")) and als.get("events") == stored,
          f"pulserec train: GET /models shows trained_at {als.get('trained_at')}, events {als.get('events')}")
    empty = ServerProcess(work / "empty-dir", env={"PULSEREC_AUTO_TRAIN_MIN_EVENTS": "0"}).start()
    empty.stop()
    check("19", "holds no events and no items" in empty.log_tail(50), "serve on an empty data dir warns")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", default=os.environ.get("PULSEREC_MOVIELENS", "../shared/data/ml-latest-small"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pulserec-e2e13"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    data_dir = args.work / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "pulserec.toml").write_text(SETTINGS)
    imported = cli("import", "--movielens", args.movielens, data_dir=data_dir)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    server = ServerProcess(data_dir, env={"PULSEREC_PSEUDONYM_KEY": PSEUDONYM_KEY}, log_level="info").start(timeout=180)
    try:
        with httpx.Client(base_url=server.url, timeout=120, headers={"x-api-key": ADMIN}) as http:
            for name, run in (("data quality", lambda: data_quality(http)),
                              ("evaluation", lambda: evaluation(data_dir, args.movielens)),
                              ("privacy", lambda: privacy(http, data_dir, server)),
                              ("keys", lambda: keys(server.url, data_dir, server)),
                              ("models", lambda: models(data_dir, http)),
                              ("robustness", lambda: robustness(http, server.url, data_dir)),
                              ("stops", lambda: stops(server, data_dir, http, args.work))):
                try:
                    run()
                except Exception as exc:  # noqa: BLE001 - a broken check is a failed check, the others still run
                    check(name, False, f"raised {type(exc).__name__}: {exc}"[:200])
    finally:
        server.stop()
    failed = [r for r in RESULTS if not r[1]]
    print(f"{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
