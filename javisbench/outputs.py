"""Output paths, checked before any work: nothing a run reads is ever overwritten.

:func:`check_run_outputs` is called by ``evaluate`` right after the run is planned (manifest read,
sample files resolved, no model loaded, no clip decoded).  For every file the run will write
(``--out``, ``--export-official``) and for the feature store it checks that

* the path is not a folder, no ancestor of it is a file, and its folder is writable (a probe file
  is created and removed) with some free space;
* it is not one of the run's inputs: the manifest, a sample's video or audio file, the reference
  file, a weights file, or a file inside the samples / reference / weights folders;
* it is not another output of the same run;
* an existing file is replaced only when it is a file of ours (a javisbench results file, or the
  original tool's JSON layout for ``--export-official``), or with ``force=True``.  ``force`` never
  allows overwriting an input.

Every problem is an :class:`OutputError` (a ``ValueError``: the command line prints one line and
exits 2) naming the option, the path, what was expected and what was found.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.run import Run

#: below this many free bytes in an output's folder the run is refused before any work
MIN_FREE_BYTES = 8 * 1024 * 1024


class OutputError(ValueError):
    """An output path that cannot or must not be written."""


class OutputWriteError(OSError):
    """Writing an output failed after the work (disk full, folder removed, ...)."""


@contextlib.contextmanager
def writing(option: str, path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into one :class:`OutputWriteError` line."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as e:
        raise OutputWriteError(e.errno, f"could not write {option} {path}: {e.strerror or e} "
                               "(the features are in the store: fix this and run the same command again)") from None


# ---------------------------------------------------------------------------------------------
# what a file is
# ---------------------------------------------------------------------------------------------
def _read_json_head(path: Path, limit: int = 512 * 1024 * 1024) -> object | None:
    try:
        if path.stat().st_size > limit:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def is_results_file(path: Path) -> bool:
    """A results JSON written by ``javisbench evaluate`` (any schema version)."""
    data = _read_json_head(path)
    return isinstance(data, dict) and "schema_version" in data and "javisbench_version" in data


def is_official_export(path: Path) -> bool:
    """The original tool's JSON layout as ``--export-official`` writes it: metric key -> number,
    null or ``{"overall": ...}``."""
    data = _read_json_head(path)
    if not isinstance(data, dict):
        return False
    return all(v is None or isinstance(v, (int, float)) or (isinstance(v, dict) and "overall" in v)
               for v in data.values())


def describe_file(path: Path) -> str:
    """A few words on what an existing file looks like (for the refusal message)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        return f"an unreadable file ({e.strerror})"
    if size == 0:
        return "an empty file"
    if head[4:8] == b"ftyp":
        kind = "an mp4/mov video"
    elif head[:4] == b"RIFF":
        kind = "a wav file"
    elif head[:2] == b"PK":
        kind = "a zip archive (e.g. a torch checkpoint)"
    elif head[:1] in (b"{", b"["):
        kind = "a JSON file of another kind"
    elif b"\0" in head:
        kind = "a binary file"
    else:
        first = head.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
        kind = f"a text file starting {first!r}"
    return f"{kind} of {size} bytes"


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_write(folder: Path) -> None:
    """Create and remove a file in ``folder`` (raises OSError when that is impossible)."""
    fd, tmp = tempfile.mkstemp(prefix=".javisbench-probe-", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` (created if absent) can hold new files; ``what`` names it in messages."""
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{what}: {existing} is a file, not a folder (expected a folder or a path that can be "
                          f"created as one)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as e:
        raise OutputError(f"{what}: cannot write into {folder} ({e.strerror or e}; expected a writable folder)") from None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise OutputError(f"{what}: only {free} bytes free on the disk holding {folder} "
                          f"(expected at least {MIN_FREE_BYTES // (1024 * 1024)} MiB)")


def check_output_file(path: Path, option: str, *, inputs: Iterable[Path] = (), input_dirs: Iterable[Path] = (),
                      ours: Callable[[Path], bool] = is_results_file, what_ours: str = "a javisbench results file",
                      force: bool = False) -> None:
    """One output file: not a folder, not an input, writable folder, existing file replaceable.

    ``inputs``: files the run reads; ``input_dirs``: folders whose files the run reads (an
    existing file inside one is refused unless it is a file of ours).  ``ours`` says whether an
    existing file may be replaced without ``force``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder (expected a file path, e.g. {path / 'results.json'})")
    for inp in inputs:
        if _same(path, Path(inp)):
            raise OutputError(f"{option} {path} is an input of this run ({inp}); refusing to overwrite it "
                              f"(choose another path for {option})")
    if path.exists():
        if not path.is_file():
            raise OutputError(f"{option} {path} exists and is not a regular file (expected a file path)")
        mine = ours(path)
        for d in input_dirs:
            if _inside(path, Path(d)) and not mine:
                raise OutputError(f"{option} {path} is a file inside the input folder {d} ({describe_file(path)}); "
                                  f"refusing to overwrite it (choose another path for {option})")
        if not mine and not force:
            raise OutputError(f"{option} {path} exists and is not {what_ours} (it is {describe_file(path)}); "
                              f"refusing to replace it (choose another path, or pass --force to replace it)")
    check_writable_folder(path.parent if str(path.parent) else Path("."), f"{option} {path}")


def check_distinct(outputs: Mapping[str, Path | None]) -> None:
    """No two outputs are the same file."""
    seen: list[tuple[str, Path]] = []
    for opt, p in outputs.items():
        if p is None:
            continue
        for opt2, p2 in seen:
            if _same(Path(p), p2):
                raise OutputError(f"{opt} and {opt2} are the same file ({p}); expected two different paths")
        seen.append((opt, Path(p)))


def run_inputs(run: "Run") -> tuple[list[Path], list[Path]]:
    """(input files, input folders) of a planned run."""
    cfg = run.config
    files: list[Path] = []
    dirs: list[Path] = []
    mpath = Path(run.manifest.path)
    if mpath.is_file():
        files.append(mpath)
    for s in run.samples:
        files.append(Path(s.video))
        if s.audio is not None:
            files.append(Path(s.audio))
    if cfg.samples_dir is not None:
        dirs.append(Path(cfg.samples_dir))
    if cfg.reference is not None:
        files.append(Path(cfg.reference))
    if cfg.reference_dir is not None:
        dirs.append(Path(cfg.reference_dir))
    wdir = Path(run.weights_dir)
    for m in run.metrics:
        for w in m.weights:
            files.append(wdir / w)
    if wdir.is_dir():
        dirs.append(wdir)
    return files, dirs


def check_run_outputs(run: "Run", force: bool = False) -> None:
    """Every output of an ``evaluate`` run, checked before any model is loaded (see the module doc)."""
    from javisbench.features import FeatureStore

    cfg = run.config
    outs = {"--out": Path(cfg.out) if cfg.out else None,
            "--export-official": Path(cfg.export_official) if cfg.export_official else None}
    check_distinct(outs)
    files, dirs = run_inputs(run)
    if outs["--out"] is not None:
        check_output_file(outs["--out"], "--out", inputs=files, input_dirs=dirs, force=force)
    if outs["--export-official"] is not None:
        check_output_file(outs["--export-official"], "--export-official", inputs=files, input_dirs=dirs,
                          ours=is_official_export, what_ours="an --export-official file", force=force)
    root = FeatureStore(cfg.cache_dir).root
    for f in files:
        if _same(root, f) or _inside(f, root):
            raise OutputError(f"--cache-dir {root.parent}: the feature store would hold the input {f}; "
                              "expected a separate folder")
    check_writable_folder(root, f"feature store (--cache-dir / JAVISBENCH_CACHE) {root.parent}")


# ---------------------------------------------------------------------------------------------
# the other commands' outputs
# ---------------------------------------------------------------------------------------------
def is_reference_file(path: Path) -> bool:
    """A reference file as ``javisbench reference build`` writes it (.pt or .npz: a zip archive)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return Path(path).suffix.lower() in (".pt", ".npz") and head == b"PK\x03\x04"


def is_comparison_file(path: Path) -> bool:
    """A ``javisbench compare --out`` file."""
    data = _read_json_head(path)
    return isinstance(data, dict) and "metrics" in data and "notes" in data


def is_html_report(path: Path) -> bool:
    """An HTML file (``javisbench report --html`` regenerates its own reports)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip().lower()
    except OSError:
        return False
    return head.startswith((b"<!doctype html", b"<html"))


def check_command_output(path: str | os.PathLike, option: str, inputs: Iterable[str | os.PathLike] = (),
                         input_dirs: Iterable[str | os.PathLike] = (), kind: str = "results") -> None:
    """``check_output_file`` for ``reference build --out`` (kind "reference"), ``compare --out``
    ("comparison") and ``report --html`` ("html")."""
    ours, what = {"reference": (is_reference_file, "a reference file (.pt / .npz)"),
                  "comparison": (is_comparison_file, "a javisbench comparison file"),
                  "html": (is_html_report, "an HTML report"),
                  "results": (is_results_file, "a javisbench results file")}[kind]
    check_output_file(Path(path), option, inputs=[Path(p) for p in inputs if p],
                      input_dirs=[Path(d) for d in input_dirs if d], ours=ours, what_ours=what)
