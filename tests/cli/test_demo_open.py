"""`pulserec demo --open`: prints the storefront's URL, which serves the shop over the demo data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_open_prints_the_storefront_url_and_serves_it(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PULSEREC_DATA_DIR", "DISPLAY", "WAYLAND_DISPLAY")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pulserec.cli.main", "demo", "--events", "1000", "--ab-visits", "50", "--open",
         "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**env, "COLUMNS": "160"})
    seen: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()  # type: ignore[union-attr]
            seen.append(line)
            if line.startswith("storefront: "):
                url = line.split()[1]
        assert url == f"http://127.0.0.1:{port}/shop", "".join(seen)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/sdk/pulserec.js"' in page.text and 'class="tile"' in page.text  # the demo's products
        product = httpx.get(f"http://127.0.0.1:{port}/shop/items/sku-00000", timeout=30)
        assert product.status_code == 200 and 'data-pulserec-item="sku-00000"' in product.text
    finally:
        process.terminate()
        process.wait(timeout=30)
