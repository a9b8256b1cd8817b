"""How far bf16 (CPU, or bf16/fp16 on CUDA) moves each metric from fp32, on the golden clips.

Scores the four golden clips (``tests/golden/inputs/clip_00..03``, 426x240, 4 s) under
``javisbench-fixed`` with the fixture checkpoints (real architectures), once per precision, the
real side of FVD/KVD/FAD being the same clips in another order.  Per metric it reports the fp32
value, the other precision's value, the largest per-sample |difference| and that difference
relative to the fp32 per-sample spread (max - min over the clips); for a set metric (FD/MMD on
four clips means little) how far its features move, ``||f - f_fp32|| / ||f_fp32||``.  Writes
``benchmarks/results/<name>.json`` and the table between the ``precision-table`` markers of
``benchmarks/README.md``.

    python benchmarks/bench_precision.py                       # CPU: fp32 vs bf16
    python benchmarks/bench_precision.py --metrics fvd kvd fad --merge    # redo some rows
    python benchmarks/bench_precision.py --device cuda --precisions bf16 fp16 --name precision_cuda
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
README = Path(__file__).resolve().parent / "README.md"
RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ["fvd", "kvd", "fad", "audio_quality", "clip_score", "clap_score", "cavp_score", "desync"]
BEGIN, END = "<!-- precision-table:begin -->", "<!-- precision-table:end -->"


def _clips(root: Path) -> tuple[Path, Path, Path]:
    fake, real = root / "samples", root / "real"
    fake.mkdir()
    real.mkdir()
    names = [f"clip_{i:02d}" for i in range(4)]
    meta = {m["name"]: m for m in json.loads((GOLDEN / "inputs" / "clips_meta.json").read_text())}
    for i, n in enumerate(names):
        for ext in ("mp4", "wav"):
            shutil.copy(GOLDEN / "inputs" / f"{n}.{ext}", fake / f"sample_{i:04d}.{ext}")
            shutil.copy(GOLDEN / "inputs" / f"{names[(i + 1) % 4]}.{ext}", real / f"sample_{i:04d}.{ext}")
    bench = root / "bench.csv"
    lines = ["text,audio_text,path,audio_path"]
    for i, n in enumerate(names):
        cap = meta.get(n, {}).get("caption", "a clip").replace('"', "'")
        lines.append(f'"{cap}","{cap}",real/sample_{i:04d}.mp4,real/sample_{i:04d}.wav')
    bench.write_text("\n".join(lines) + "\n")
    return fake, real, bench


def _features(cfg: Any, enc_id: str) -> dict[str, dict[str, np.ndarray]]:
    """One encoder's stored features per sample id of a finished run (all served from its store)."""
    from javisbench.evaluate import extract, load_encoders, plan_run
    from javisbench.features import FeatureStore

    run, _ = plan_run(cfg)
    encs, _ = load_encoders(run)
    feats, _ = extract(run, {enc_id: encs[enc_id]}, FeatureStore(cfg.cache_dir))
    return {sid: f[enc_id] for sid, f in feats.items() if enc_id in f}


def table(rows: list[dict[str, Any]], other: str) -> str:
    out = [f"| metric | fp32 | {other} | max per-sample \\|Δ\\| | relative \\|Δ\\| |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["rel_to_spread"] is not None:
            rel = f"{r['rel_to_spread']:.2%} of the clips' spread"
        elif r.get("feature_rel_err") is not None:
            rel = f"features ({r['feature']}) move by {r['feature_rel_err']:.2%} (worst clip, L2)"
        else:
            rel = "–"
        ps = "–" if r["max_abs_per_sample"] is None else f"{r['max_abs_per_sample']:.3g}"
        out.append(f"| {r['metric']} | {r['fp32']:.6g} | {r['other']:.6g} | {ps} | {rel} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", nargs="+", default=["bf16"], help="compared with fp32")
    ap.add_argument("--metrics", nargs="+", default=METRICS)
    ap.add_argument("--name", default="precision_cpu")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--merge", action="store_true", help="keep the previous record's rows of metrics not run now")
    a = ap.parse_args()

    from bench_scale import commit, machine

    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate
    from javisbench.golden import GOLDEN_WRITERS, write_golden_weights
    from javisbench.suite import get_metric

    root = Path(tempfile.mkdtemp(prefix="javisbench-precision-"))
    record: dict[str, Any] = {"benchmark": "bench_precision", "device": a.device, "metrics": a.metrics,
                              "clips": "tests/golden/inputs clip_00..clip_03", "protocol": "javisbench-fixed",
                              "comparisons": {}}
    try:
        encs = sorted({e for m in a.metrics for e in get_metric(m).encoders if e in GOLDEN_WRITERS})
        weights = write_golden_weights(GOLDEN, root / "weights", encs)
        fake, real, bench = _clips(root)
        res: dict[str, dict[str, Any]] = {}
        cfgs: dict[str, Any] = {}
        for prec in ["fp32", *a.precisions]:
            cfg = EvalConfig(samples_dir=fake, bench=bench, out=None, metrics=a.metrics, weights_dir=weights,
                             cache_dir=root / f"cache-{prec}", reference_dir=real, device=a.device,
                             protocol="javisbench-fixed", precision=prec, progress=False, workers=2)
            t = time.perf_counter()
            cfgs[prec] = cfg
            res[prec] = evaluate(cfg)
            print(f"{prec}: {time.perf_counter() - t:.0f} s; skipped {res[prec]['skipped'] or 'none'}; "
                  f"failures {res[prec]['failures'] or 'none'}", flush=True)
        base = res["fp32"]
        sections = []
        for prec in a.precisions:
            rows = []
            for m in a.metrics:
                if m not in base["overall"] or m not in res[prec]["overall"]:
                    continue
                v32, vo = base["overall"][m].get("value"), res[prec]["overall"][m].get("value")
                if v32 is None or vo is None:
                    continue
                row: dict[str, Any] = {"metric": m, "fp32": float(v32), "other": float(vo),
                                       "abs_diff": abs(float(vo) - float(v32)), "max_abs_per_sample": None,
                                       "rel_to_spread": None}
                ids = base["sample_ids"]
                ps32 = [base["per_sample"].get(s, {}).get(m) for s in ids]
                pso = [res[prec]["per_sample"].get(s, {}).get(m) for s in ids]
                if get_metric(m).kind == "sample" and all(v is not None for v in ps32 + pso):
                    x, y = np.asarray(ps32, np.float64), np.asarray(pso, np.float64)
                    d = float(np.nanmax(np.abs(x - y)))
                    spread = float(np.nanmax(x) - np.nanmin(x))
                    row.update(max_abs_per_sample=d, rel_to_spread=d / spread if spread > 0 else None)
                else:
                    # a set metric on four clips is dominated by its rank-deficient covariances: report
                    # how far its features move instead, ||f_other - f_fp32|| / ||f_fp32|| (worst clip)
                    enc_id, name = get_metric(m).set_feature
                    f32, fo = _features(cfgs["fp32"], enc_id), _features(cfgs[prec], enc_id)
                    rel = [float(np.linalg.norm(np.asarray(fo[s][name], np.float64) - np.asarray(f32[s][name], np.float64))
                                 / max(np.linalg.norm(np.asarray(f32[s][name], np.float64)), 1e-30)) for s in f32]
                    row["feature_rel_err"] = max(rel)
                    row["feature"] = f"{enc_id}:{name}"
                rows.append(row)
            prev = {}
            if a.merge and (RESULTS / f"{a.name}.json").exists():
                prev = {r["metric"]: r for r in json.loads((RESULTS / f"{a.name}.json").read_text())
                        .get("comparisons", {}).get(prec, [])}
            ran = {r["metric"] for r in rows}
            order = {m: i for i, m in enumerate(METRICS)}
            rows = sorted(rows + [r for m, r in prev.items() if m not in ran], key=lambda r: order.get(r["metric"], 99))
            record["comparisons"][prec] = rows
            sections.append(f"**fp32 vs {prec}** ({a.device}, {machine()['cpu'] if a.device == 'cpu' else a.device}):\n\n"
                            + table(rows, prec))
            print(table(rows, prec))
        record.update(machine=machine(), commit=commit(), date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        from javisbench.files import atomic_write_text

        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{a.name}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        if not a.no_readme and README.exists():
            text = README.read_text()
            block = f"{BEGIN}\n" + "\n\n".join(sections) + f"\n\n(written by `benchmarks/bench_precision.py`, " \
                    f"commit {record['commit'][:12]}, {record['date_utc']})\n{END}"
            if BEGIN in text and END in text:
                text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
            else:
                text += "\n" + block + "\n"
            atomic_write_text(README, text)
            print(f"table written to {README.relative_to(ROOT)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
