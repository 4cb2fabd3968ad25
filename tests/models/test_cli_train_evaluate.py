"""`pulserec train` and `pulserec evaluate` on a data directory's SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from planted_groups import two_group_frame
from typer.testing import CliRunner

from pulserec.cli import evaluate as evaluate_cli
from pulserec.cli import train as train_cli
from pulserec.models.als import ALS
from pulserec.models.base import Query
from pulserec.store import EVENT_COLUMNS, SQLiteStore

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    train_cli.register(app)
    evaluate_cli.register(app)
    return app


@pytest.fixture
def data_dir(tmp_path):
    frame = two_group_frame()
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    for column in EVENT_COLUMNS:
        if column not in frame:
            frame[column] = None
    store = SQLiteStore(tmp_path / "pulserec.db")
    store.append_frame(frame)
    store.close()
    return tmp_path


def test_train_saves_a_loadable_model(app, data_dir, tmp_path) -> None:
    out = tmp_path / "als.model"
    result = CliRunner().invoke(
        app, ["train", "--model", "als", "--data-dir", str(data_dir), "--out", str(out), "-p", "factors=2"]
    )
    assert result.exit_code == 0, result.output
    model = ALS.load(out)
    assert model.factors == 2 and len(model.item_ids) == 12
    a0 = model.item_ids.get("a0")
    assert model.score(Query(items=np.array([a0]), weights=np.ones(1)), 12) is not None


def test_train_rejects_unknown_model(app, data_dir, tmp_path) -> None:
    result = CliRunner().invoke(app, ["train", "--model", "nope", "--data-dir", str(data_dir), "--out", "x.model"])
    assert result.exit_code != 0


def test_evaluate_prints_and_writes_report(app, data_dir, tmp_path) -> None:
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--models", "popular,item_knn_bm25", "--split", "leave-last-out",
         "--data-dir", str(data_dir), "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    assert "40 test users" in result.output
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    assert "| item_knn_bm25 |" in (report / "report.md").read_text()
    assert list(report.glob("*.png"))


def test_evaluate_defaults_to_a_split_with_every_user_and_warns_when_few(app, data_dir) -> None:
    """The default split tests every user with two or more events; below 200 test users the
    command says the differences are noise, and each model's NDCG@10 comes with a 95% interval."""
    result = CliRunner().invoke(app, ["evaluate", "--models", "popular", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "split leave-last-out:" in result.output and "40 test users" in result.output
    assert "warning: only 40 test users (< 200)" in result.output
    assert "popular: NDCG@10 " in result.output and "95% CI" in result.output


def ndcg_line(output: str, model: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{model}: NDCG@10 "))


def test_evaluate_asks_with_the_data_dirs_query_settings(app, data_dir) -> None:
    """The evaluator builds each query with the data dir's settings, as its server would: with
    a query of the latest event alone (query_len 1) item-kNN scores differently."""
    args = ["evaluate", "--models", "item_knn", "--data-dir", str(data_dir)]
    served = CliRunner().invoke(app, args)
    (data_dir / "pulserec.toml").write_text("query_len = 1\nlong_term_weight = 0.0\n")
    latest_only = CliRunner().invoke(app, args)
    assert served.exit_code == latest_only.exit_code == 0, served.output + latest_only.output
    assert ndcg_line(served.output, "item_knn") != ndcg_line(latest_only.output, "item_knn")


def test_torch_threads_are_set_before_a_blend_with_a_sequence_model_trains() -> None:
    """A blend imports torch only inside its fit: the setting must reach torch before it (a fresh
    interpreter, torch not yet imported); a model without torch parts never imports it."""
    code = (
        "import sys\n"
        "from pulserec.models.registry import build_model\n"
        "from pulserec.recommend.training import apply_torch_threads\n"
        "apply_torch_threads(3, build_model('ease'))\n"
        "assert 'torch' not in sys.modules\n"
        "apply_torch_threads(3, build_model('hybrid', components=['item_knn', ('sasrec', {})]))\n"
        "import torch\n"
        "assert torch.get_num_threads() == 3, torch.get_num_threads()\n"
    )
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr
