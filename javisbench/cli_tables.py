"""``javisbench export``, ``javisbench rewards`` and ``javisbench rank-pairs``."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(a: argparse.Namespace) -> int:
    from javisbench.frames import export
    from javisbench.results import read_results

    results = read_results(a.results)
    for p in export(results, a.format, a.out, stem=Path(a.results).stem):
        print(f"wrote {p}")
    return 0


def cmd_rewards(a: argparse.Namespace) -> int:
    from javisbench.rewards import main_rewards

    opts = {k: v for k, v in dict(weights_dir=a.weights_dir, cache_dir=a.cache_dir, batch_size=a.batch_size,
                                  workers=a.workers, limit=a.limit, protocol=a.protocol).items() if v is not None}
    return main_rewards(a.samples_dir, a.bench, a.out, device=a.device, progress=a.progress, **opts)


def cmd_rank_pairs(a: argparse.Namespace) -> int:
    from javisbench.rewards import main_rank_pairs

    return main_rank_pairs(a.rewards, a.out, mode=a.mode)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    x = sub.add_parser("export", help="per-sample and per-cell tables of a results file (csv, parquet, xlsx)")
    x.add_argument("results", help="results JSON")
    x.add_argument("--format", choices=["csv", "parquet", "xlsx"], default="csv",
                   help="csv (default), parquet (needs pyarrow) or xlsx (needs openpyxl)")
    x.add_argument("--out", required=True, help="folder for RESULTS_samples.EXT and RESULTS_cells.EXT (xlsx: one "
                   "workbook RESULTS.xlsx)")
    x.set_defaults(func=cmd_export)

    r = sub.add_parser("rewards", help="per-sample AV-DPO rewards (quality, ImageBind, -DeSync) with group z-scores")
    r.add_argument("samples_dir", help="sample_{i:04d}.mp4 per row, or several candidates sample_{i:04d}_{k}.mp4")
    r.add_argument("--bench", required=True, help="the prompts' manifest (a 'candidate' column: rows are candidates "
                   "of the prompt in their text column)")
    r.add_argument("--out", required=True, help="rewards CSV")
    r.add_argument("--device", default="cpu")
    r.add_argument("--protocol", default=None)
    r.add_argument("--weights-dir", type=Path, default=None)
    r.add_argument("--cache-dir", type=Path, default=None)
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument("--workers", type=int, default=None)
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto")
    r.set_defaults(func=cmd_rewards)

    p = sub.add_parser("rank-pairs", help="chosen/rejected pairs per prompt from a rewards CSV (Pareto-dominant in "
                       "every reward group, largest summed margin)")
    p.add_argument("rewards", help="CSV written by `javisbench rewards`")
    p.add_argument("--out", required=True, help="pairs JSONL (one pair per line)")
    p.add_argument("--mode", choices=["micro", "macro"], default="micro",
                   help="group score: mean of the z-scored rewards (micro, default) or of their ranks (macro)")
    p.set_defaults(func=cmd_rank_pairs)
