"""The installed `pulserec` command, run as a user would."""

import os
import subprocess
import sys


from pulserec.ingest.synthetic import generate, write


def run(*args, cwd=None, check=True, **env):
    result = subprocess.run([sys.executable, "-m", "pulserec.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                            env={**os.environ, "COLUMNS": "120", **env}, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return result


def test_help_lists_every_command():
    out = run("--help").stdout
    for command in ("demo", "import", "serve", "generate", "stats"):
        assert command in out


def test_demo_runs_end_to_end_in_a_temporary_directory_it_names(tmp_path):
    cwd, temp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    out = run("demo", "--events", "3000", cwd=cwd, TMPDIR=str(temp)).stdout
    assert list(cwd.iterdir()) == []  # nothing left in the current directory
    (made,) = temp.iterdir()
    assert made.name.startswith("pulserec-demo-") and (made / "pulserec.db").is_file()
    assert f"demo data directory: {made.resolve()}" in out
    assert "replayed" in out and "events/s" in out
    assert "(new)" in out  # some list visibly changed after a live event
    assert "because you" in out and "trending" in out


def test_import_and_stats(tmp_path):
    paths = write(generate(n_users=20, n_items=30, n_events=500, seed=1), tmp_path / "sample", "parquet")
    out = run("import", "--items", paths["items"], "--events", paths["events"], "--data-dir", str(tmp_path / "d")).stdout
    assert "500 stored" in out
    assert '"events_stored": 500' in run("stats", "--data-dir", str(tmp_path / "d")).stdout


def test_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "events.txt"
    bad.write_text("nope")
    result = run("import", "--events", str(bad), "--data-dir", str(tmp_path / "d"), check=False)
    assert result.returncode == 1
    assert "unsupported file type" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_refuses_an_untrainable_retrain_before_opening_anything(tmp_path):
    result = run("serve", "--retrain", "als,nope", "--data-dir", str(tmp_path / "d"), check=False)
    assert result.returncode == 1
    assert "--retrain: cannot train nope; choose from" in result.stdout + result.stderr
    assert not (tmp_path / "d" / "pulserec.db").exists() and "Traceback" not in result.stdout + result.stderr


def test_import_train_and_evaluate_an_app(tmp_path):
    """`--app NAME` works on <data-dir>/apps/NAME with the app's settings (runtime/apps.py), and
    leaves the default app's store alone; an app never created is one clear error."""
    import json

    data = tmp_path / "d"
    app_dir = data / "apps" / "shop"
    app_dir.mkdir(parents=True)
    (app_dir / "app.json").write_text(json.dumps({"settings": {"trending_halflife": 3600.0}}))  # as PUT /apps/shop writes it
    paths = write(generate(n_users=20, n_items=30, n_events=500, seed=1), tmp_path / "sample", "parquet")
    out = run("import", "--app", "shop", "--items", paths["items"], "--events", paths["events"],
              "--data-dir", str(data)).stdout
    assert "500 stored" in out and (app_dir / "pulserec.db").is_file() and not (data / "pulserec.db").exists()
    trained = run("train", "--app", "shop", "--model", "item_knn_bm25", "--data-dir", str(data)).stdout
    assert str(app_dir / "models" / "item_knn_bm25.model") in trained
    evaluated = run("evaluate", "--app", "shop", "--models", "popular", "--data-dir", str(data)).stdout
    assert "popular" in evaluated
    missing = run("import", "--app", "nope", "--events", paths["events"], "--data-dir", str(data), check=False)
    assert missing.returncode != 0 and "no app 'nope'" in missing.stdout + missing.stderr
    bad = run("import", "--app", "Bad!", "--events", paths["events"], "--data-dir", str(data), check=False)
    assert bad.returncode != 0 and "app names are" in bad.stdout + bad.stderr
