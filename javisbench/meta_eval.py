"""``javisbench meta-eval``: how well does each metric tell clean clips from corrupted copies?

For the clean clips of a manifest (generated or real), every corruption of
:mod:`reference_models.baselines` is applied to every clip (shifted audio, swapped audio, frozen
video, pixel noise, silent audio), the clean clips and each corrupted set are written as samples
folders (the clean ones re-encoded by the same writer, so that codec loss is not what separates
them), each folder is scored with :func:`javisbench.evaluate.evaluate`, and per metric and
corruption the output gives

* ``auroc``: the area under the ROC curve of "clean" vs "corrupted" from the per-sample values
  (oriented so that higher means better; scikit-learn's ``roc_auc_score``), 1 = perfect separation,
  0.5 = chance;
* ``paired_accuracy``: the fraction of clips whose clean copy scores better than its corrupted
  copy (a tie counts one half);
* percentile-bootstrap intervals of both over the clips (``metrics.bootstrap``; a resample keeps
  each clean clip with its corrupted copy);
* set metrics (FVD, KVD, FAD, ...) have no per-sample value: their clean and corrupted set values
  (against the reference: ``--reference-dir``, else the clean clips themselves) and whether the
  corrupted set is worse (``corrupted_worse``; null when the value did not change: the corruption
  leaves the features that metric reads untouched).

Audio is mixed to mono for every variant (the corruptions act on one channel).  Metrics whose
weights are absent are listed as skipped; weights that are not the official files (fixture or
fill weights) are named in ``unofficial_weights`` and in the table: their AUROC says nothing about
the official metric.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

DEFAULT_CORRUPTIONS = ("shift:0.2,0.5,1.0", "swap", "frozen", "noise", "silent")
NOISE_DEFAULT = 0.1
META_SCHEMA = "meta-eval 1"


@dataclass(frozen=True)
class Corruption:
    name: str                                  # e.g. "shift 0.5 s"
    folder: str                                # e.g. "shift_0p5s"
    fn: Callable[..., Any]


def parse_corruptions(specs: list[str] | tuple[str, ...] | None) -> list[Corruption]:
    """``["shift:0.2,0.5", "swap", "frozen", "noise:0.1", "silent"]`` -> corruptions (validated)."""
    from reference_models import baselines as B

    out: list[Corruption] = []
    for spec in specs or DEFAULT_CORRUPTIONS:
        for part in str(spec).split():
            kind, _, args = part.partition(":")
            kind = kind.strip().lower()
            try:
                values = [float(x) for x in args.split(",") if x.strip()] if args else []
            except ValueError:
                raise ValueError(f"--corruptions {part!r}: expected numbers after ':', e.g. shift:0.2,0.5") from None
            if kind == "shift":
                for s in values or [0.5]:
                    if not 0 < s:
                        raise ValueError(f"--corruptions {part!r}: a shift must be > 0 seconds, got {s:g}")
                    out.append(Corruption(f"shift {s:g} s", f"shift_{s:g}s".replace(".", "p"), B.shift_audio(s)))
            elif kind == "noise":
                for s in values or [NOISE_DEFAULT]:
                    if not 0 < s:
                        raise ValueError(f"--corruptions {part!r}: noise sigma must be > 0, got {s:g}")
                    out.append(Corruption(f"noise {s:g}", f"noise_{s:g}".replace(".", "p"), B.video_noise(s)))
            elif kind in ("swap", "frozen", "silent") and not values:
                fn = {"swap": B.swap_audio, "frozen": B.frozen_video, "silent": B.silent_audio}[kind]
                out.append(Corruption(kind, kind, fn))
            else:
                raise ValueError(f"--corruptions {part!r}: unknown corruption; expected shift[:S,...], swap, frozen, "
                                 f"noise[:SIGMA,...] or silent")
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--corruptions: {', '.join(dup)} given twice")
    return out


# ---------------------------------------------------------------------------------------------
# corrupted copies
# ---------------------------------------------------------------------------------------------
def _even(frames: np.ndarray) -> np.ndarray:
    t, h, w, _ = frames.shape
    return frames[:, : h - h % 2, : w - w % 2]


def _fit(audio: np.ndarray, sr_from: int, sr_to: int, length: int) -> np.ndarray:
    a = np.asarray(audio, np.float32)
    if sr_from != sr_to:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr_from), int(sr_to))
        a = resample_poly(a, int(sr_to) // g, int(sr_from) // g).astype(np.float32)
    out = np.zeros(length, np.float32)
    out[: min(length, a.size)] = a[:length]
    return out


def write_variants(samples: list[Any], corruptions: list[Corruption], work: Path,
                   protocol: Any = None) -> tuple[dict[str, Path], dict[str, str]]:
    """Decode every sample once, write ``work/clean`` and one folder per corruption.

    Returns (variant name -> folder, sample id -> problem for samples that could not be read)."""
    from reference_models.synthav.io import write_clip

    from javisbench.decode import decode_sample

    kw = {}
    if protocol is not None:
        kw = {"color_matrix": protocol.decode_color_matrix, "apply_rotation": protocol.decode_apply_rotation}
    clips: list[tuple[np.ndarray, np.ndarray]] = []
    meta: list[tuple[str, float, int]] = []
    problems: dict[str, str] = {}
    for s in samples:
        if s.problem:
            problems[s.sample_id] = s.problem
            continue
        try:
            c = decode_sample(s.video, s.audio, s.sample_id, **kw)
        except Exception as e:  # noqa: BLE001 - a bad clip is recorded, the others go on
            problems[s.sample_id] = f"{type(e).__name__}: {e}"
            continue
        audio = c.audio.mean(axis=0) if c.audio.ndim == 2 else c.audio
        clips.append((_even(c.frames), np.ascontiguousarray(audio, np.float32)))
        meta.append((s.sample_id, float(c.fps), int(c.sr)))
    if len(clips) < 2:
        raise ValueError(f"meta-eval needs at least 2 readable clean clips, got {len(clips)}"
                         + (f" ({'; '.join(f'{k}: {v}' for k, v in list(problems.items())[:3])})" if problems else ""))
    folders: dict[str, Path] = {}
    for name, folder, fn in [("clean", "clean", None)] + [(c.name, c.folder, c.fn) for c in corruptions]:
        d = work / "variants" / folder
        for i, (sid, fps, sr) in enumerate(meta):
            if fn is None:
                frames, audio = clips[i]
            else:
                # the corruption sees every clip at this clip's rate and length (swap reads another clip)
                view = [(f, _fit(a, meta[j][2], sr, clips[i][1].size)) for j, (f, a) in enumerate(clips)]
                frames, audio = fn(view, i, sr)
            write_clip(d, sid, frames, audio, fps, sr)
        folders[name] = d
    return folders, problems


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def _auroc(clean: np.ndarray, bad: np.ndarray) -> float:
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        raise ValueError("meta-eval computes AUROC with scikit-learn, which is not installed: "
                         "pip install 'javisbench[meta]'") from None

    y = np.r_[np.ones(clean.size), np.zeros(bad.size)]
    s = np.r_[clean, bad]
    if np.all(s == s[0]):
        return 0.5
    return float(roc_auc_score(y, s))


def _paired(clean: np.ndarray, bad: np.ndarray) -> np.ndarray:
    return (clean > bad).astype(np.float64) + 0.5 * (clean == bad)


def separation(clean: np.ndarray, bad: np.ndarray, higher_is_better: bool, n_boot: int = 1000,
               level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """AUROC and paired accuracy of clean vs corrupted per-sample values, with bootstrap intervals.

    ``clean[i]`` and ``bad[i]`` are the same clip; pairs with a NaN on either side are dropped.

    >>> r = separation(np.array([3.0, 2.0, 5.0, 4.0]), np.array([1.0, 2.5, 0.0, 4.5]), True, n_boot=50)
    >>> r["auroc"], r["paired_accuracy"], r["n"]
    (0.75, 0.5, 4)
    """
    from metrics.bootstrap import bootstrap_ci, bootstrap_set_spread

    c = np.asarray(clean, np.float64)
    b = np.asarray(bad, np.float64)
    ok = np.isfinite(c) & np.isfinite(b)
    c, b = c[ok], b[ok]
    if not higher_is_better:
        c, b = -c, -b
    n = int(c.size)
    if n == 0:
        return {"auroc": None, "auroc_ci": [None, None], "paired_accuracy": None, "paired_accuracy_ci": [None, None],
                "n": 0, "n_dropped": int((~ok).sum())}
    wins = _paired(c, b)
    rng = np.random.default_rng(seed)
    lo, hi = bootstrap_set_spread(lambda idx: _auroc(c[idx], b[idx]), n, n_boot, level, rng) if n >= 2 else (math.nan,) * 2
    plo, phi = bootstrap_ci(wins, n_boot, level, rng) if n >= 2 else (math.nan,) * 2
    f = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 6)  # noqa: E731
    return {"auroc": f(_auroc(c, b)), "auroc_ci": [f(lo), f(hi)], "paired_accuracy": f(float(wins.mean())),
            "paired_accuracy_ci": [f(plo), f(phi)], "n": n, "n_dropped": int((~ok).sum())}


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def meta_eval(samples_dir: str | Path, bench: str | Path, out: str | Path | None = None,
              corruptions: list[str] | None = None, metrics: list[str] | None = None,
              weights_dir: str | Path | None = None, device: str = "cpu", work_dir: str | Path | None = None,
              reference_dir: str | Path | None = None, protocol: str | None = None, n_boot: int = 1000,
              seed: int = 0, workers: int = 2, progress: bool = False) -> dict[str, Any]:
    """Corrupt, score and compare; returns the meta-evaluation document (written to ``out``).

    ``work_dir`` (default: ``<out stem>.work`` next to ``out``) holds the variant folders, their
    results files and the feature cache."""
    from javisbench.benches import load_bench
    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from javisbench.manifest import resolve_samples
    from javisbench.protocol import get_protocol
    from javisbench.results import SCHEMA_VERSION, write_json
    from javisbench.suite import select_metrics

    from javisbench._version import __version__

    corr = parse_corruptions(corruptions)
    wanted = select_metrics(metrics)
    manifest, bench_def = load_bench(bench, samples_dir)
    if bench_def is not None:
        raise ValueError(f"--bench {bench}: meta-eval needs a manifest CSV (rows named sample_XXXX), not a folder bench")
    prot = get_protocol(protocol or "javisbench-official")
    samples = resolve_samples(manifest, samples_dir)
    out_p = Path(out) if out is not None else None
    work = Path(work_dir) if work_dir else (out_p.with_suffix("").parent / f"{out_p.stem}.work" if out_p else Path("meta-eval.work"))
    work.mkdir(parents=True, exist_ok=True)
    folders, problems = write_variants(samples, corr, work, prot)
    ref_dir = Path(reference_dir) if reference_dir else folders["clean"]
    results: dict[str, dict[str, Any]] = {}
    for name, folder in folders.items():
        cfg = EvalConfig(samples_dir=folder, bench=Path(bench), out=work / "results" / f"{folder.name}.json",
                         metrics=[m.key for m in wanted], device=device,
                         weights_dir=Path(weights_dir) if weights_dir else None, cache_dir=work / "cache",
                         reference_dir=ref_dir, model_name=f"meta-eval {name}", protocol=protocol, progress=progress,
                         workers=workers, force=True, seed=seed)
        results[name] = evaluate(cfg)
    clean = results["clean"]
    ids = clean["sample_ids"]
    table: dict[str, dict[str, Any]] = {}
    for m in wanted:
        meta = clean["metrics"].get(m.key)
        if meta is None or m.key in clean.get("skipped", {}):
            continue
        row: dict[str, Any] = {}
        for c in corr:
            r = results[c.name]
            if m.kind == "set":
                cv, bv = clean["overall"].get(m.key, {}), r["overall"].get(m.key, {})
                a, b = cv.get("value"), bv.get("value")
                worse = None if a is None or b is None or a == b else bool((b < a) if m.higher_is_better else (b > a))
                row[c.name] = {"kind": "set", "clean": cv, "corrupted": bv, "corrupted_worse": worse}
                continue
            cvals = np.array([_num(clean["per_sample"].get(s, {}).get(m.key)) for s in ids])
            bvals = np.array([_num(r["per_sample"].get(s, {}).get(m.key)) for s in ids])
            row[c.name] = {"kind": "sample", **separation(cvals, bvals, m.higher_is_better, n_boot,
                                                          prot.ci_level if hasattr(prot, "ci_level") else 0.95, seed)}
        table[m.key] = row
    unofficial: dict[str, Any] = {}
    for r in results.values():
        unofficial.update(r.get("unofficial_weights") or {})
    status = weights_status(clean)
    notes = []
    bad = sorted(k for k, v in status.items() if v.startswith("not official"))
    unknown = sorted(k for k, v in status.items() if v.startswith("not verified"))
    if bad:
        notes.append(f"weights not official: {', '.join(bad)} (sha256 differs from the official file's) — the AUROC "
                     "of their metrics says nothing about the official metrics")
    if unknown:
        notes.append(f"weights not verified as official: {', '.join(unknown)} (no published sha256 to compare with; "
                     "fixture or fill weights look the same) — read their AUROC as that of these weights only")
    if reference_dir is None and any(m.kind == "set" for m in wanted):
        notes.append("set metrics: the reference set is the clean clips themselves (the clean value is the "
                     "metric's floor); pass --reference-dir for an independent real set")
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": META_SCHEMA,
        "javisbench_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": clean["protocol"],
        "bench": clean["bench"],
        "model": {"name": "meta-eval", "samples": str(Path(samples_dir).resolve())},
        "encoders": clean["encoders"],
        "unofficial_weights": unofficial,
        "weights_status": status,
        "seed": seed,
        "device": device,
        "n_boot": n_boot,
        "corruptions": [c.name for c in corr],
        "metrics": {k: clean["metrics"][k] for k in table},
        "sample_ids": ids,
        "meta_eval": table,
        "variants": {n: str((work / "results" / f"{f.name}.json").resolve()) for n, f in folders.items()},
        "failures": {**{sid: {"input": p} for sid, p in problems.items()},
                     **{f"{n}/{sid}": st for n, r in results.items() for sid, st in r.get("failures", {}).items()}},
        "warnings": {f"{n}/{sid}": w for n, r in results.items() for sid, w in r.get("warnings", {}).items()},
        "skipped": dict(clean.get("skipped", {})),
        "notes": notes,
    }
    if out_p is not None:
        write_json(doc, out_p)
    return doc


def weights_status(results: dict[str, Any]) -> dict[str, str]:
    """``encoder:file`` -> ``official`` | ``not official: ...`` | ``not verified: ...`` for every weight
    file of the run's encoders (the sha256 recorded in the results against the published one)."""
    from javisbench.encoders import encoder_class

    out: dict[str, str] = {}
    for enc_id, info in sorted((results.get("encoders") or {}).items()):
        try:
            files = encoder_class(enc_id).weight_files
        except KeyError:
            continue
        for wf in files:
            got = (info.get("weights_sha256") or {}).get(wf.name)
            key = f"{enc_id}:{wf.name}"
            if wf.sha256 is None:
                out[key] = "not verified: no published sha256"
            elif got == wf.sha256:
                out[key] = "official"
            else:
                out[key] = f"not official: sha256 {str(got)[:12]}... is not the official {wf.sha256[:12]}..."
    return out


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def meta_table(doc: dict[str, Any]) -> str:
    """Metrics as rows, corruptions as columns: ``AUROC [lo, hi] acc`` (sample metrics) or
    ``clean -> corrupted ok|WRONG|unchanged`` (set metrics)."""
    corr = doc["corruptions"]
    head = ["metric"] + corr
    rows = []
    for key, row in doc["meta_eval"].items():
        m = doc["metrics"][key]
        cells = [f"{key} {'↑' if m['higher_is_better'] else '↓'}" + ("" if m.get("official", True) else " (not official)")]
        for c in corr:
            x = row.get(c)
            if x is None:
                cells.append("—")
            elif x["kind"] == "set":
                a, b = x["clean"].get("value"), x["corrupted"].get("value")
                verdict = {True: "ok", False: "WRONG", None: "unchanged"}[x["corrupted_worse"]]
                cells.append("—" if a is None or b is None else f"{a:.3g} -> {b:.3g} {verdict}")
            elif x["auroc"] is None:
                cells.append("—")
            else:
                lo, hi = x["auroc_ci"]
                ci = "" if lo is None else f" [{lo:.2f},{hi:.2f}]"
                cells.append(f"{x['auroc']:.2f}{ci} acc {x['paired_accuracy']:.2f}")
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [f"meta-evaluation on {doc['bench']['name']} ({len(doc['sample_ids'])} clips), protocol "
             f"{doc['protocol']['name']}: AUROC [{int(100 * 0.95)}% bootstrap] and paired accuracy, clean vs corrupted",
             fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    for k, why in doc.get("skipped", {}).items():
        lines.append(f"skipped {k}: {why}")
    for n in doc.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def cmd_meta_eval(a: argparse.Namespace) -> int:
    doc = meta_eval(a.samples, a.bench, a.out, corruptions=a.corruptions, metrics=a.metrics, weights_dir=a.weights_dir,
                    device=a.device, work_dir=a.work_dir, reference_dir=a.reference_dir, protocol=a.protocol,
                    n_boot=a.n_boot, seed=a.seed, workers=a.workers, progress=a.verbose)
    print(meta_table(doc))
    print(f"\nmeta-evaluation written to {a.out}")
    return 0


def register(sub: Any) -> None:
    """Add ``meta-eval`` to the ``javisbench`` subcommands."""
    p = sub.add_parser("meta-eval", help="AUROC / paired accuracy of each metric on clean vs corrupted copies of your clips")
    p.add_argument("samples", type=Path, help="folder of clean clips sample_XXXX.mp4 (+ .wav)")
    p.add_argument("--bench", required=True, type=Path, help="manifest CSV of those clips")
    p.add_argument("--out", required=True, type=Path, help="meta-evaluation JSON")
    p.add_argument("--corruptions", nargs="+", default=None,
                   help=f"shift[:S,...] swap frozen noise[:SIGMA,...] silent (default: {' '.join(DEFAULT_CORRUPTIONS)})")
    p.add_argument("--metrics", nargs="+", default=None, help="metric keys (default: every default metric; "
                   "@synthav: every in-domain key)")
    p.add_argument("--weights-dir", type=Path, default=None)
    p.add_argument("--reference-dir", type=Path, default=None, help="real clips for the set metrics' reference")
    p.add_argument("--protocol", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--work-dir", type=Path, default=None, help="variant folders and results (default: OUT.work)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_meta_eval)
