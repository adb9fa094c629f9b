"""``defectbench publish``: the dry-run folder is exactly the upload and loads offline; no network is one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from defectbench.commands import board
from defectbench.core import DefectbenchError
from defectbench.dataset import iter_rows, read_manifest
from defectbench.engine import build
from defectbench.publish import publish, stage


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pub") / "fma-clicks"
    build("fma-clicks", "synth", out, limit=1, progress=False)
    return out


def _app() -> typer.Typer:
    app = typer.Typer()
    board.register(app)
    app.command("noop")(lambda: None)  # typer collapses a one-command app; keep `publish` a subcommand
    return app


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The installed CLI in a fresh process (hub settings are read at import time)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "defectbench.cli", *args], capture_output=True, text=True,
                          env=clean, timeout=120)


def test_dry_run_stages_exactly_the_upload_and_loads_offline(dataset, tmp_path, monkeypatch):
    (dataset / "notes.txt").write_text("not part of the dataset")  # a stray file must not be uploaded
    staged = tmp_path / "staged"
    result = CliRunner().invoke(_app(), ["publish", str(dataset), "--repo", "someorg/clicks", "--dry-run",
                                         "--staging", str(staged)])
    assert result.exit_code == 0, result.output
    assert "would create public dataset repo someorg/clicks" in result.output
    assert "nothing uploaded" in result.output
    from defectbench.ownership import MARKER

    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file() and p.name != MARKER)
    assert (staged / MARKER).is_file()  # ours (and never uploaded: upload_folder ignores it)
    shards = sorted(p.relative_to(dataset).as_posix() for p in (dataset / "data").glob("*.parquet"))
    assert files == sorted(shards + ["README.md", "manifest.json"])
    for name in files:
        assert (staged / name).read_bytes() == (dataset / name).read_bytes()
        assert name in result.output

    from datasets import Audio, load_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_dataset(str(staged))
    manifest = read_manifest(dataset)
    assert set(loaded) == {s for s, info in manifest["splits"].items() if info["samples"]}
    for split in loaded:
        hf = loaded[split].cast_column("audio", Audio(decode=False))
        ours = list(iter_rows(dataset, split, decode_audio=False))
        assert len(hf) == len(ours) == manifest["splits"][split]["samples"]
        for a, b in zip(hf, ours):
            assert a["id"] == b["id"]
            assert a["audio"]["bytes"] == b["audio"]["bytes"]
            assert np.array_equal(np.asarray(a["target"], dtype=np.uint8), b["target"])
            assert a["label"] == b["label"]
            assert a["params"] == b["params"]


def test_push_without_a_route_to_the_hub_is_one_clear_line(dataset, tmp_path):
    # a real connection attempt to a closed local port: refused, as a machine without network would be
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli(["publish", str(dataset), "--repo", "someorg/clicks", "--staging", str(tmp_path / "st")],
                {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_not_a_real_token"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot reach the Hugging Face Hub" in lines[0] and "nothing was uploaded" in lines[0]
    assert "Traceback" not in proc.stderr


def _hub_resolves() -> bool:
    try:
        socket.getaddrinfo("huggingface.co", 443)
        return True
    except OSError:
        return False


@pytest.mark.skipif(_hub_resolves(), reason="huggingface.co resolves here: this test is for a machine without network")
def test_push_to_the_real_hub_address_without_network(dataset, tmp_path):
    proc = _cli(["publish", str(dataset), "--repo", "someorg/clicks", "--staging", str(tmp_path / "st")], {})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot reach the Hugging Face Hub" in proc.stderr


def test_offline_mode_is_named(dataset, tmp_path):
    proc = _cli(["publish", str(dataset), "--repo", "someorg/clicks", "--staging", str(tmp_path / "st")],
                {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "HF_HUB_OFFLINE" in proc.stderr


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "org/bad name"])
def test_bad_repo_ids_fail_before_any_network(dataset, tmp_path, repo):
    with pytest.raises(DefectbenchError, match="--repo"):
        publish(dataset, repo, dry_run=True, staging=tmp_path / "st")
    assert not (tmp_path / "st").exists()


def test_an_altered_dataset_is_not_published(dataset, tmp_path):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(dataset, copy)
    next((copy / "data").glob("test-*.parquet")).unlink()
    with pytest.raises(DefectbenchError, match="split test has 0 shard files but the manifest lists 1"):
        stage(copy, tmp_path / "st", "someorg/clicks")


def test_staging_inside_the_dataset_is_refused(dataset):
    with pytest.raises(DefectbenchError, match="outside the dataset folder"):
        stage(dataset, dataset / "upload", "someorg/clicks")


def test_a_refused_token_is_one_clear_line(dataset, tmp_path):
    # a real HTTP server that answers every request with 401, standing in for the Hub's answer to a bad token
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refuse(BaseHTTPRequestHandler):
        def _refuse(self):
            body = b'{"error": "Invalid credentials in Authorization header"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = _refuse

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = _cli(["publish", str(dataset), "--repo", "someorg/clicks", "--staging", str(tmp_path / "st")],
                    {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}", "HF_TOKEN": "hf_not_a_real_token"})
    finally:
        server.shutdown()
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "the Hub refused the token for someorg/clicks (HTTP 401)" in proc.stderr
