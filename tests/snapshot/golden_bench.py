"""The golden bench run whose results must not change when the pipeline is restructured.

``run_golden_bench(root)`` scores the four golden clips, labelled with categories, against the
three golden real clips with the fixture checkpoints, and returns the results dict.
``comparable(results)`` keeps what a refactor must leave identical: the numbers (overall,
per category, per subcategory, per sample), failures, warnings and skip reasons.
``differences`` lists changed and missing entries apart from keys that only the run has (keys
added to cells, e.g. ``interval``/``value_inf``/``reliable``): those come last, as ``added:``
lines, so a new key never hides a changed number.  ``with_added_keys(snapshot, run)`` adds them
to a snapshot and leaves every existing entry as it is.
``python -m tests.snapshot.golden_bench OUT.json`` writes a snapshot;
``python -m tests.snapshot.golden_bench --add-keys SNAPSHOT.json`` adds new keys to one (and
refuses if anything else differs).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FAKE = ["clip_00", "clip_01", "clip_02", "clip_03"]
REAL = ["edge_short2s", "edge_5p3s_30fps", "edge_44k_stereo", "clip_02"]
LABELS = [("0", "0", "3", "0", "0"), ("1", "0", "0,3", "1", "1"), ("0", "1", "4", "2", "0,2"), ("1", "1", "3", "1", "1")]
ENCODERS = ["i3d", "audioclip", "clip", "clap", "audiobox", "cavp"]
METRICS = ["fvd", "kvd", "fad", "clip_score", "clap_score", "audio_quality", "cavp_score", "av_align", "av_lag"]


def copy_clips(root: Path, names: list[str]) -> Path:
    """``root/sample_{i:04d}.mp4`` + ``.wav`` from the golden clips ``names``: a samples folder."""
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        shutil.copy(GOLDEN / "inputs" / f"{n}.mp4", root / f"sample_{i:04d}.mp4")
        shutil.copy(GOLDEN / "inputs" / f"{n}.wav", root / f"sample_{i:04d}.wav")
    return root


def write_bench(path: Path, names: list[str], labels: list[tuple[str, ...]]) -> Path:
    """A JavisBench-style CSV over golden clips: captions from their metadata, category labels given."""
    meta = {c["name"]: c for c in json.loads((GOLDEN / "inputs" / "clips_meta.json").read_text())}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "audio_text", "path", "cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind", "cat4_ind"])
        for n, lab in zip(names, labels):
            cap = meta.get(n, {}).get("caption", "a sounding clip")
            w.writerow([cap, cap, f"{n}.mp4", *lab])
    return path



def run_golden_bench(root: Path) -> dict[str, Any]:
    from javisbench.cli import main
    from javisbench.golden import write_golden_weights

    bench = write_bench(root / "bench.csv", FAKE, LABELS)
    weights = write_golden_weights(GOLDEN, root / "weights", ENCODERS)
    args = ["evaluate", str(copy_clips(root / "samples", FAKE)), "--bench", str(bench), "--out", str(root / "r.json"),
            "--weights-dir", str(weights), "--cache-dir", str(root / "cache"), "--reference-dir",
            str(copy_clips(root / "real", REAL)), "--metrics", *METRICS, "--quiet", "--batch-size", "4"]
    rc = main(args)
    if rc != 0:
        raise RuntimeError(f"javisbench evaluate exited {rc}")
    return json.loads((root / "r.json").read_text())


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    return {k: results.get(k) for k in ("overall", "per_category", "per_subcategory", "per_sample", "failures",
                                        "warnings", "skipped", "sample_ids")}


def _walk(want: Any, got: Any, path: str, rel: float, abs_: float, changed: list[str], added: list[str]) -> None:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k not in got:
                changed.append(f"{path}/{k}: only in snapshot")
            elif k not in want:
                added.append(f"added: {path}/{k} = {str(got[k])[:60]}")
            else:
                _walk(want[k], got[k], f"{path}/{k}", rel, abs_, changed, added)
    elif isinstance(want, float) and isinstance(got, float):
        if not math.isclose(want, got, rel_tol=rel, abs_tol=abs_):
            changed.append(f"{path}: snapshot {want!r}, run {got!r}")
    elif want != got:
        changed.append(f"{path}: snapshot {str(want)[:80]!r}, run {str(got)[:80]!r}")


def differences(want: Any, got: Any, path: str = "", rel: float = 1e-6, abs_: float = 1e-9) -> list[str]:
    """Where two ``comparable`` trees differ: keys, strings, counts exactly; numbers within
    ``rel`` (set metrics: the official float32 SVD rounds differently under other BLAS threading)
    or ``abs_``.  Changed values and entries missing from the run come first; keys only the run
    has follow as ``added: <path> = <value>`` lines."""
    changed: list[str] = []
    added: list[str] = []
    _walk(want, got, path, rel, abs_, changed, added)
    return changed + added


def with_added_keys(snapshot: Any, run: Any) -> Any:
    """``snapshot`` with the keys only ``run`` has added (recursively); every existing entry kept as it is."""
    if not (isinstance(snapshot, dict) and isinstance(run, dict)):
        return snapshot
    out = {k: with_added_keys(v, run[k]) if k in run else v for k, v in snapshot.items()}
    out.update({k: v for k, v in run.items() if k not in snapshot})
    return out


if __name__ == "__main__":  # pragma: no cover
    # python -m tests.snapshot.golden_bench OUT.json [SNAPSHOT.json]: write a snapshot, and diff it
    # python -m tests.snapshot.golden_bench --add-keys SNAPSHOT.json: add the run's new keys to a snapshot
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        snap = comparable(run_golden_bench(Path(d)))
    if sys.argv[1] == "--add-keys":
        old = json.loads(Path(sys.argv[2]).read_text())
        diff = differences(old, snap)
        changed = [line for line in diff if not line.startswith("added: ")]
        if changed:
            sys.exit("not only added keys; snapshot left as it is:\n" + "\n".join(changed))
        Path(sys.argv[2]).write_text(json.dumps(with_added_keys(old, snap), indent=1, sort_keys=True) + "\n")
        print(f"{len(diff)} key(s) added")
        sys.exit(0)
    Path(sys.argv[1]).write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    if len(sys.argv) > 2:
        print("\n".join(differences(json.loads(Path(sys.argv[2]).read_text()), snap, rel=0.0, abs_=0.0)) or "identical")
