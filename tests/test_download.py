"""Weights downloads against a local HTTP server on 127.0.0.1 (never the network): an interrupted
download resumes with a Range request, a wrong sha256 is refused, nothing ever sits under the
final name until the file is whole and verified; Hub entries go through huggingface_hub."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
from pathlib import Path

import pytest

from javisbench.download import DownloadError, fetch, hub_source, http_download
from javisbench.weights import BadWeightsError, WeightFile, sha256_of

DATA = bytes(range(256)) * 1200 + b"tail"           # 307204 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class Server:
    """Serves DATA at /w.bin with Range support; ``cut`` truncates the next response after N bytes."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.cut: int | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # noqa: ANN002, ANN201
                pass

            def do_GET(self):  # noqa: ANN201
                rng = self.headers.get("Range")
                outer.requests.append({"path": self.path, "range": rng})
                if self.path != "/w.bin":
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(DATA):
                    self.send_response(416)
                    self.end_headers()
                    return
                body = DATA[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
                self.end_headers()
                if outer.cut is not None:
                    self.wfile.write(body[: outer.cut])
                    self.wfile.flush()
                    outer.cut = None
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/w.bin"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():  # noqa: ANN201
    s = Server()
    yield s
    s.close()


def test_interrupted_download_resumes(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "w" / "model.pt"
    server.cut = 100_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        http_download(server.url, dest, SHA, progress="none", timeout=5)
    part = dest.with_name("model.pt.part")
    assert not dest.exists()                                 # nothing under the final name
    assert 0 < part.stat().st_size <= 100_000 and DATA.startswith(part.read_bytes())
    have = part.stat().st_size
    digest = http_download(server.url, dest, SHA, progress="none", timeout=5)
    assert digest == SHA and dest.read_bytes() == DATA and not part.exists()
    assert server.requests[-1]["range"] == f"bytes={have}-"  # resumed, not restarted
    assert sha256_of(dest) == SHA                             # recorded in the memo


def test_wrong_hash_is_refused_and_nothing_is_left(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "model.pt"
    with pytest.raises(BadWeightsError, match=f"sha256 {SHA} != expected 00+; the download was deleted"):
        http_download(server.url, dest, "0" * 64, progress="none", timeout=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_http_error_and_unreachable(server: Server, tmp_path: Path) -> None:
    with pytest.raises(BadWeightsError, match="HTTP 404"):
        http_download(server.url.replace("w.bin", "nope.bin"), tmp_path / "x", None, progress="none", timeout=5)
    server.close()
    with pytest.raises(DownloadError):
        http_download(server.url, tmp_path / "x", None, progress="none", timeout=2)
    assert not (tmp_path / "x").exists()
    server.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # for close()
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()


def test_plain_progress_lines(server: Server, tmp_path: Path) -> None:
    out = io.StringIO()
    http_download(server.url, tmp_path / "m.pt", SHA, progress="plain", timeout=5, stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].endswith("(100%)") and "of 0.3 MiB" in lines[0]


def test_cli_downloads_the_catalog(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    from javisbench import weights_cli
    from javisbench.cli import main

    wf = WeightFile("model.pt", server.url, "test", sha256=SHA)
    monkeypatch.setattr(weights_cli, "catalog", lambda encs=None: [("i3d", wf)])
    assert main(["weights", "download", "--weights-dir", str(tmp_path), "--progress", "none"]) == 0
    assert (tmp_path / "model.pt").read_bytes() == DATA and f"sha256 {SHA}" in capsys.readouterr().out
    assert main(["weights", "download", "--weights-dir", str(tmp_path)]) == 0
    assert "already present" in capsys.readouterr().out


def test_hub_sources() -> None:
    s = hub_source("https://huggingface.co/spaces/LanguageBind/Open-Sora-Plan-v1.0.0/resolve/810fa8c/opensora/x.pt")
    assert (s.repo_id, s.repo_type, s.revision, s.filename) == ("LanguageBind/Open-Sora-Plan-v1.0.0", "space", "810fa8c",
                                                                "opensora/x.pt")
    s = hub_source("https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct")
    assert (s.repo_id, s.repo_type, s.revision, s.filename) == ("Qwen/Qwen2-VL-2B-Instruct", "model", None, None)
    assert hub_source("https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth") is None


def test_hub_file_and_folder_through_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hf = pytest.importorskip("huggingface_hub")
    calls = []

    def fake_file(repo_id, filename, repo_type=None, revision=None, local_dir=None, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(("file", repo_id, filename, repo_type, revision))
        p = Path(local_dir) / filename
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(DATA)
        return str(p)

    def fake_snapshot(repo_id, repo_type=None, revision=None, local_dir=None, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(("snapshot", repo_id, None, repo_type, revision))
        d = Path(local_dir)
        (d / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        (d / ".cache" / "huggingface" / "x.incomplete").write_bytes(b"")
        (d / "config.json").write_text(json.dumps({"a": 1}))
        (d / "sub").mkdir(exist_ok=True)
        (d / "sub" / "model.safetensors").write_bytes(b"w")
        return str(d)

    monkeypatch.setattr(hf, "hf_hub_download", fake_file)
    monkeypatch.setattr(hf, "snapshot_download", fake_snapshot)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("JAVISBENCH_OFFLINE_DEFAULTS", "HF_HUB_OFFLINE")       # set by the CLI, lifted for downloads
    f = WeightFile("ckpt/cavp.ckpt", "https://huggingface.co/SimianLuo/Diff-Foley/resolve/main/diff_foley_ckpt/c.ckpt",
                   "x", sha256=SHA)
    assert fetch(f, tmp_path, progress="none") == tmp_path / "ckpt" / "cavp.ckpt"
    assert (tmp_path / "ckpt" / "cavp.ckpt").read_bytes() == DATA
    d = WeightFile("clap", "https://huggingface.co/laion/clap-htsat-unfused", "x", kind="dir",
                   members=("config.json", "sub/model.safetensors"))
    fetch(d, tmp_path, progress="none")
    assert sorted(str(p.relative_to(tmp_path / "clap")) for p in (tmp_path / "clap").rglob("*") if p.is_file()) == [
        "config.json", "sub/model.safetensors"]
    assert calls == [("file", "SimianLuo/Diff-Foley", "diff_foley_ckpt/c.ckpt", "model", "main"),
                     ("snapshot", "laion/clap-htsat-unfused", None, "model", None)]
    assert not (tmp_path / ".download" / "clap").exists()
    bad = WeightFile("bad.ckpt", f.url, "x", sha256="1" * 64)
    with pytest.raises(BadWeightsError, match="nothing written"):
        fetch(bad, tmp_path, progress="none")
    assert not (tmp_path / "bad.ckpt").exists()
    # a user who set HF_HUB_OFFLINE themselves is told, not overridden
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("JAVISBENCH_OFFLINE_DEFAULTS")
    with pytest.raises(BadWeightsError, match="HF_HUB_OFFLINE is set"):
        fetch(f, tmp_path / "again", progress="none")
