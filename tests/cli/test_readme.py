"""The README's commands, run as a new user would: the examples chain in order, in one data directory."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

README = Path(__file__).resolve().parents[2] / "README.md"
#: `generate` makes a smaller shop so that the chain runs in seconds; every other argument is the README's.
SMALL_SHOP = "3000"


def using_it() -> list[list[str]]:
    """The command lines of the README's "Using it" block, without comments."""
    block = re.search(r"## Using it\n\n```bash\n(.*?)```", README.read_text(), re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def scaled(argv: list[str]) -> list[str]:
    if argv[1] != "generate":
        return argv
    return [SMALL_SHOP if argv[i - 1] == "--events" else arg for i, arg in enumerate(argv)]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PULSEREC_DATA_DIR"}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    assert argv[0] == "pulserec"
    return subprocess.run([sys.executable, "-m", "pulserec.cli.main", *argv[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=240, env=environment())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_until_healthy(argv: list[str], cwd: Path) -> dict:
    """Run the README's `serve` line (it runs until stopped) on a free port; stop it once /health answers."""
    port = str(free_port())
    argv = [port if argv[i - 1] == "--port" else arg for i, arg in enumerate(argv)]
    process = subprocess.Popen([sys.executable, "-m", "pulserec.cli.main", *argv[1:]], cwd=cwd, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError(f"serve did not come up: {process.communicate(timeout=10)[0] if process.poll() is not None else ''}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_examples_use_one_data_dir():
    dirs = {argv[argv.index("--data-dir") + 1] for argv in using_it() if "--data-dir" in argv}
    assert dirs == {"shop-data"}


def test_the_examples_chain_in_order(tmp_path):
    for argv in using_it():
        if argv[1:2] == ["serve"]:
            stats = serve_until_healthy(argv, tmp_path)
            assert stats["events_stored"] > 0  # the server reads the store the import filled
            continue
        result = run(scaled(argv), tmp_path)
        assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}{result.stderr}"
    assert (tmp_path / "shop-data" / "models").is_dir()
    assert (tmp_path / "reports" / "eval").is_dir() and (tmp_path / "reports" / "replay").is_dir()
    assert not (tmp_path / "pulserec-data").exists()  # nothing fell back to the default directory
