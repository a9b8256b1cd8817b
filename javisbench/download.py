"""Fetching official weights: Hugging Face Hub files and folders through ``huggingface_hub``
(resume, progress, its local cache, the token from ``HF_TOKEN``), anything else over plain
HTTP(S) with resume (``Range``) and progress.

Never a partial file under its final name: plain downloads grow ``NAME.part`` beside the target
and are renamed only when complete and, where the catalog knows it, when the sha256 matches (a
mismatch deletes the ``.part`` and raises).  Hub downloads land in a staging folder
(``WEIGHTS/.download/NAME``, where huggingface_hub keeps its resumable ``.incomplete`` files) and
each finished file is moved into place.  An interrupted download resumes when the same command
runs again.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from javisbench.weights import BadWeightsError, WeightFile, remember_sha256, sha256_of

CHUNK = 1 << 16
_HF = re.compile(r"^https://huggingface\.co/(?:(?P<type>spaces|datasets)/)?(?P<repo>[^/]+/[^/]+)"
                 r"(?:/(?P<kind>resolve|tree|blob)/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?/?$")


class DownloadError(OSError):
    """A download that did not complete (the partial file is kept for the next try)."""


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    repo_type: str             # model | space | dataset
    revision: str | None
    filename: str | None       # None: the whole repository snapshot


def hub_source(url: str) -> HubSource | None:
    """The Hub repository (and file) of a huggingface.co URL; None for any other URL.

    Example:
        >>> hub_source("https://huggingface.co/SimianLuo/Diff-Foley/resolve/main/diff_foley_ckpt/cavp_epoch66.ckpt")
        HubSource(repo_id='SimianLuo/Diff-Foley', repo_type='model', revision='main', filename='diff_foley_ckpt/cavp_epoch66.ckpt')
        >>> hub_source("https://huggingface.co/laion/clap-htsat-unfused").filename is None
        True
    """
    m = _HF.match(url)
    if not m:
        return None
    rtype = {"spaces": "space", "datasets": "dataset"}.get(m.group("type") or "", "model")
    path = m.group("path") if m.group("kind") in ("resolve", "blob") else None
    return HubSource(m.group("repo"), rtype, m.group("rev"), path)


# ---------------------------------------------------------------------------------------------
# progress over bytes
# ---------------------------------------------------------------------------------------------
class _Bytes:
    def __init__(self, name: str, total: int | None, initial: int, mode: Any, stream: IO[str] | None = None) -> None:
        from javisbench.progress import resolve_mode

        self.stream = sys.stderr if stream is None else stream
        self.mode = resolve_mode(mode, self.stream)
        self.name, self.total, self.n = name, total, initial
        self._next = 0.1
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=f"[javisbench] {name}", file=self.stream, dynamic_ncols=True)
        elif self.mode == "plain" and initial:
            self._say(f"resuming at {initial / 2**20:.1f} MiB")

    def _say(self, what: str) -> None:
        self.stream.write(f"[javisbench] {self.name}: {what}\n")
        self.stream.flush()

    def update(self, n: int) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "plain" and self.total:
            while self.n / self.total >= self._next - 1e-12 and self._next <= 1.0 + 1e-9:
                self._say(f"{self.n / 2**20:.1f} of {self.total / 2**20:.1f} MiB ({self._next:.0%})")
                self._next += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------------------
# plain HTTP(S)
# ---------------------------------------------------------------------------------------------
def http_download(url: str, dest: str | os.PathLike, sha256: str | None = None, progress: Any = "auto",
                  timeout: float = 30.0, stream: IO[str] | None = None) -> str:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed with a ``Range`` request when it
    exists); returns the sha256 of the complete file.

    Raises:
        DownloadError: the connection failed or ended early (``.part`` kept: run again to resume).
        BadWeightsError: the server answered with an error, or the sha256 differs from ``sha256``
            (``.part`` deleted, nothing under ``dest``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "javisbench", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - the catalog's https URLs
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:          # the .part is already whole: verify it below
            resp = None
        else:
            raise BadWeightsError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {getattr(e, 'reason', e)}") from None
    h = hashlib.sha256()
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if status == 200 and have:      # the server ignored the range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = (have + int(length)) if length and length.isdigit() else None
            if have:
                with open(part, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 22), b""):
                        h.update(chunk)
            bar = _Bytes(dest.name, total, have, progress, stream)
            got = have
            try:
                with open(part, "ab" if have else "wb") as f:
                    while True:
                        try:
                            chunk = resp.read(CHUNK)
                        except http.client.IncompleteRead as e:
                            f.write(e.partial)
                            h.update(e.partial)
                            got += len(e.partial)
                            raise DownloadError(f"{url}: the connection ended after {got} of {total or '?'} bytes; "
                                                "run the same command again to resume") from None
                        except OSError as e:
                            raise DownloadError(f"{url}: {e} after {got} bytes; run the same command again to "
                                                "resume") from None
                        if not chunk:
                            break
                        f.write(chunk)
                        h.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                bar.close()
            if total is not None and got != total:
                raise DownloadError(f"{url}: the connection ended after {got} of {total} bytes; run the same "
                                    "command again to resume")
    else:
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    digest = h.hexdigest()
    if sha256 and digest != sha256:
        part.unlink(missing_ok=True)
        raise BadWeightsError(f"{url}: sha256 {digest} != expected {sha256}; the download was deleted, nothing "
                              f"written to {dest}")
    os.replace(part, dest)
    remember_sha256(dest, digest)
    return digest


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------------------------
def _hub() -> Any:
    """huggingface_hub, online: the offline defaults this tool sets for evaluation are lifted."""
    for k in [k for k in os.environ.get("JAVISBENCH_OFFLINE_DEFAULTS", "").split(",") if k]:
        os.environ.pop(k, None)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise BadWeightsError("HF_HUB_OFFLINE is set in the environment: unset it to download from the Hub")
    try:
        import huggingface_hub
    except ImportError:
        raise BadWeightsError("downloads from the Hugging Face Hub need huggingface_hub, which is not installed: "
                              "pip install huggingface_hub") from None
    return huggingface_hub


def _move_into(staging: Path, final: Path) -> list[Path]:
    """Move every finished file of a staging snapshot into ``final`` (one rename per file)."""
    moved = []
    for p in sorted(staging.rglob("*")):
        rel = p.relative_to(staging)
        if not p.is_file() or rel.parts[0] == ".cache" or p.name.endswith(".incomplete"):
            continue
        target = final / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, target)
        moved.append(target)
    return moved


def hub_download(src: HubSource, wf: WeightFile, weights_dir: Path, progress: Any = "auto") -> Path:
    """A Hub file (verified against ``wf.sha256`` when known) or folder into ``weights_dir/wf.name``."""
    hub = _hub()
    from javisbench.progress import resolve_mode

    if resolve_mode(progress) == "none":
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    staging = weights_dir / ".download" / wf.name
    staging.mkdir(parents=True, exist_ok=True)
    final = weights_dir / wf.name
    if wf.kind == "dir" or src.filename is None:
        hub.snapshot_download(repo_id=src.repo_id, repo_type=src.repo_type, revision=src.revision,
                              local_dir=str(staging))
        final.mkdir(parents=True, exist_ok=True)
        _move_into(staging, final)
        missing = [m for m in wf.members if not (final / m).exists()]
        if missing:
            raise BadWeightsError(f"{src.repo_id}: the snapshot lacks {', '.join(missing)} (expected in {final})")
    else:
        got = Path(hub.hf_hub_download(repo_id=src.repo_id, filename=src.filename, repo_type=src.repo_type,
                                       revision=src.revision, local_dir=str(staging)))
        digest = sha256_of(got)
        if wf.sha256 and digest != wf.sha256:
            got.unlink(missing_ok=True)
            raise BadWeightsError(f"{src.repo_id}/{src.filename}: sha256 {digest} != expected {wf.sha256}; the "
                                  f"download was deleted, nothing written to {final}")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, final)
        remember_sha256(final, digest)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def fetch(wf: WeightFile, weights_dir: str | os.PathLike, progress: Any = "auto", timeout: float = 30.0) -> Path:
    """Download one catalog entry into ``weights_dir`` (Hub or plain HTTPS, by its URL)."""
    weights_dir = Path(weights_dir)
    src = hub_source(wf.url)
    if src is not None:
        return hub_download(src, wf, weights_dir, progress)
    if wf.kind == "dir":
        raise BadWeightsError(f"{wf.name} is a folder and {wf.url} is not a Hugging Face repository: fetch it by hand")
    dest = weights_dir / wf.name
    http_download(wf.url, dest, wf.sha256, progress=progress, timeout=timeout)
    return dest
