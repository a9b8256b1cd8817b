"""The ``javisbench`` command line: thin, fast to start, one library call per subcommand."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

EPILOG = """examples:
  javisbench demo
  javisbench evaluate samples/JavisBench-mini --bench JavisBench-mini.csv --out results.json \\
      --reference JavisBench-mini-vanilla-max4s.pt --device cuda
  javisbench validate samples/JavisBench-mini --bench JavisBench-mini.csv
  javisbench ls metrics
  javisbench weights list
"""


def _offline_env() -> None:
    # hubs are never contacted at run time: a library that tries must fail fast, not retry for minutes
    ours = [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if k not in os.environ]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    if ours:    # `weights download` lifts only these (javisbench.download)
        os.environ.setdefault("JAVISBENCH_OFFLINE_DEFAULTS", ",".join(ours))


# ---------------------------------------------------------------------------------------------
def cmd_evaluate(a: argparse.Namespace) -> int:
    from javisbench.api import evaluate
    from javisbench.report import overall_table

    meta = parse_model_meta(a.model_meta)
    cfg = dict(
        protocol=a.protocol, weights_dir=a.weights_dir, cache_dir=a.cache_dir,
        batch_size=a.batch_size, workers=a.workers, reference=a.reference, reference_dir=a.reference_dir,
        model_name=a.model_name, model_meta=meta, limit=a.limit, taxonomy=a.taxonomy, where=a.where,
        subset=a.subset, subset_seed=a.subset_seed,
        per_sample=not a.no_per_sample, export_official=a.export_official, seed=a.seed, force=a.force,
        precision=a.precision,
    )
    results = evaluate(a.samples_dir, bench=a.bench, metrics=a.metrics, device=a.device, out=a.out,
                       progress="none" if a.quiet else a.progress, **cfg).data
    if "overall" not in results:     # a torchrun rank other than 0: its shard is in the store, rank 0 reports
        return 0
    print(overall_table({**results, "failures": {}}))    # failures: grouped by reason in the summary below
    return _finish_evaluate(a, cfg, results)


def parse_model_meta(items: Sequence[str] | None) -> dict[str, str]:
    """``--model-meta KEY=VALUE ...`` as a dict; a malformed item is a one-line error naming it."""
    meta: dict[str, str] = {}
    for kv in items or []:
        key, sep, value = kv.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--model-meta {kv!r}: expected KEY=VALUE (e.g. --model-meta steps=30 cfg=7.5)")
        if key == "name":
            raise ValueError(f"--model-meta {kv!r}: the model name is set with --model-name, not as metadata")
        if key in meta and meta[key] != value:
            raise ValueError(f"--model-meta: {key} given twice ({meta[key]!r} and {value!r}); expected one value")
        meta[key] = value
    return meta


def _finish_evaluate(a: argparse.Namespace, cfg: "object", results: dict) -> int:
    """Print the failure / warning summary under the table; the exit code it means."""
    from javisbench.summary import render, summarize

    full = a.limit is None and a.where is None and a.subset is None
    s = summarize(results, samples_dir=a.samples_dir, full_selection=full, strict=a.strict,
                  allow_failures=a.allow_failures)
    text = render(s, out=a.out)
    if text:
        print()
        print(text)
    print(f"\nresults written to {a.out}")
    if s.exit_code:
        why = "samples failed or metrics have no value" if s.n_failed or s.missing_metrics else "warnings (--strict)"
        print(f"javisbench: exit {s.exit_code}: {why}; pass --allow-failures to exit 0 anyway", file=sys.stderr)
    return s.exit_code


def cmd_validate(a: argparse.Namespace) -> int:
    from javisbench.validate import validate

    report = validate(Path(a.bench), Path(a.samples_dir) if a.samples_dir else None, limit=a.limit, taxonomy=a.taxonomy,
                      probe=not a.no_probe)
    print(report.render())
    return 0 if report.ok else 1


def cmd_ls(a: argparse.Namespace) -> int:
    if a.what == "generators":
        from javisbench.cli_generators import ls_generators

        return ls_generators(a.verbose)
    if a.what == "metrics":
        from javisbench.suite import METRICS

        rows = [(m.key, m.arrow, m.kind, "yes" if m.official else "extra", ",".join(m.encoders),
                 ",".join(m.weights) or "(none)", m.description) for m in METRICS.values()]
        from javisbench.tables import grid

        print(grid(("key", "dir", "kind", "official", "encoder", "weights", "description"), rows, rule=False,
                   last_free=True))
    elif a.what == "encoders":
        from javisbench.encoders import ENCODERS

        for name, target in ENCODERS.items():
            print(f"{name:<16}{target}")
    elif a.what == "benches":
        from javisbench.benches import CSV_BENCHES, builtin_benches, data_dir

        for cb in CSV_BENCHES.values():
            where = data_dir() / cb.file
            print(f"{cb.name}: {cb.title}; CSV, {cb.rows} rows, {where} ({'found' if where.is_file() else 'not found'})")
        for b in builtin_benches().values():
            alias = f" (also {', '.join(b.aliases)})" if b.aliases else ""
            print(f"{b.name}{alias}: {b.title}; folder bench, protocol {b.protocol}, metrics {', '.join(b.metrics)}")
            if a.verbose:
                print(f"    {b.description}")
                for r in b.reported_in:
                    print(f"    reported in: {r}")
    else:
        from javisbench.protocol import PROTOCOLS

        for p in PROTOCOLS.values():
            print(f"{p.name} (v{p.version}, {p.fingerprint}): {p.description}")
            if a.verbose:
                for k, v in p.values().items():
                    print(f"    {k} = {v}")
    return 0


def cmd_weights(a: argparse.Namespace) -> int:
    from javisbench.weights_cli import run_weights

    return run_weights(a.action, a.encoders, a.weights_dir, progress=a.progress)


def cmd_demo(a: argparse.Namespace) -> int:
    from javisbench.demo import demo_table, run_demo

    print(f"[javisbench demo] rendering {a.n} SynthAV clips and 4 corrupted copies"
          + (f", training 2 tiny generators for {a.generator_steps} steps" if a.generator_steps > 0 else "")
          + f" under {a.out} ...")
    results = run_demo(a.out, n_clips=a.n, device=a.device, weights_dir=a.weights_dir, progress=a.verbose,
                       generator_steps=a.generator_steps)
    print()
    print(demo_table(results))
    print(f"\nper-variant results: {Path(a.out) / 'results'}")
    return 0


def cmd_reference(a: argparse.Namespace) -> int:
    from javisbench.config import EvalConfig
    from javisbench.evaluate import build_reference
    from javisbench.reference import feature_name, write_reference

    cfg = EvalConfig(samples_dir=Path(a.real_dir), bench=Path(a.bench), metrics=a.metrics, device=a.device,
                     weights_dir=a.weights_dir, cache_dir=a.cache_dir, batch_size=a.batch_size, limit=a.limit,
                     protocol=a.protocol)
    from javisbench.outputs import check_command_output

    check_command_output(a.out, "--out", inputs=[a.bench] if Path(a.bench).is_file() else [], input_dirs=[a.real_dir],
                         kind="reference")
    feats, feature_protocols, run, log = build_reference(cfg)
    if not feats:
        print("no reference features computed: " + "; ".join(log.skipped.values()), file=sys.stderr)
        return 1
    for sid, msgs in log.warnings.items():
        for m in msgs:
            print(f"warning: {sid}: {m}", file=sys.stderr)
    write_reference(feats, a.out, protocol=run.protocol, feature_protocols=feature_protocols)
    print(f"wrote {a.out} (protocol {run.protocol.name}): " + ", ".join(f"{feature_name(k)} {v.shape}" for k, v in feats.items()))
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from javisbench.report import category_tables, overall_table
    from javisbench.results import read_results

    r = read_results(a.results)
    if a.html:
        from javisbench.outputs import check_command_output

        check_command_output(a.html, "--html", inputs=[a.results], kind="html")
    print(overall_table(r))
    if r.get("per_category"):
        print()
        print(category_tables(r))
    if a.crosstab:
        from javisbench.breakdown import crosstab_cells
        from javisbench.report import crosstab_tables
        from javisbench.results import labels_from_results

        tabs = crosstab_cells(r, labels_from_results(r), a.crosstab[0], a.crosstab[1], a.metrics)
        print()
        print(crosstab_tables(tabs, a.crosstab[0], a.crosstab[1]))
    if a.html:
        from javisbench.report import write_html

        write_html(r, a.html)
        print(f"\nHTML report: {a.html}")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from javisbench.compare import compare, render_comparison
    from javisbench.results import read_results

    ra, rb = read_results(a.a), read_results(a.b)
    if a.out:
        from javisbench.outputs import check_command_output

        check_command_output(a.out, "--out", inputs=[a.a, a.b], kind="comparison")
    c = compare(ra, rb, n_boot=a.n_boot, seed=a.seed, level=a.level)
    print(render_comparison(c))
    if a.out:
        from javisbench.results import write_json

        write_json(c, a.out)
    return 0


def cmd_leaderboard(a: argparse.Namespace) -> int:
    from javisbench import leaderboard

    results_dir = Path(a.results_dir) if a.results_dir else Path(a.out) / "results"
    if a.action == "add":
        for dest in leaderboard.add(a.files, results_dir, name=a.name, link=a.link, family=a.family, replace=a.replace):
            print(f"added {dest}")
        print(f"now run: javisbench leaderboard build --out {a.out}")
        return 0
    if a.files:
        raise ValueError(f"leaderboard build takes no files (got {' '.join(a.files)}); add them with `leaderboard add`")
    if a.no_reported:
        reported = None
    elif a.reported_dir is not None:
        reported = Path(a.reported_dir)
        if not reported.is_dir():
            raise ValueError(f"--reported-dir {reported} is not a folder")
    else:   # the layout's default: reported/ beside results/
        reported = results_dir.resolve().parent / "reported"
        reported = reported if reported.is_dir() else None
    for path in leaderboard.build(results_dir, a.out, reported_dir=reported):
        print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="javisbench", description="Evaluate text-to-sounding-video models (JavisBench).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from javisbench._version import __version__

    p.add_argument("--version", action="version", version=f"javisbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    from javisbench.summary import exit_codes_help

    e = sub.add_parser("evaluate", help="score a folder of generated clips", epilog=exit_codes_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("samples_dir", nargs="?", help="folder with sample_0000.mp4 (+ .wav), one per manifest row; "
                   "for a folder bench, the clips themselves")
    e.add_argument("--bench", required=True, help="benchmark manifest (JavisBench CSV), or a folder bench: "
                   "landscape, aist++ or a YAML definition (see `javisbench ls benches`)")
    e.add_argument("--out", required=True, help="results JSON")
    e.add_argument("--protocol", default=None, help="javisbench-official (default; a folder bench names its own), "
                   "javisbench-fixed, javisbench-mmdiffusion or mmdiffusion (see `javisbench ls protocols`)")
    e.add_argument("--metrics", nargs="+", default=None, help="metric keys (default: all); see `javisbench ls metrics`")
    e.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    e.add_argument("--weights-dir", type=Path, default=None, help="official checkpoints (env JAVISBENCH_WEIGHTS)")
    e.add_argument("--cache-dir", type=Path, default=None, help="feature store root (env JAVISBENCH_CACHE)")
    e.add_argument("--batch-size", nargs="+", default=8, metavar="N|ENCODER=N",
                   help="batch size of every encoder (default 8), then per-encoder overrides, e.g. 8 synchformer=2 i3d=16")
    e.add_argument("--workers", type=int, default=None, help="decode threads")
    e.add_argument("--reference", type=Path, default=None, help="ground-truth feature cache (<bench>-vanilla-max4s.pt)")
    e.add_argument("--reference-dir", type=Path, default=None, help="real clips to compute reference features from")
    e.add_argument("--model-name", default="unnamed")
    e.add_argument("--model-meta", nargs="*", metavar="KEY=VALUE")
    e.add_argument("--limit", type=int, default=None, help="only the first N manifest rows")
    e.add_argument("--taxonomy", default=None, help="taxonomy name or YAML file (default: javisbench)")
    e.add_argument("--where", default=None, help='category filter, e.g. "sound_type=musical,temporal=simultaneous"')
    e.add_argument("--subset", type=int, default=None, help="score a seeded random subset of N rows")
    e.add_argument("--subset-seed", type=int, default=0)
    e.add_argument("--export-official", type=Path, default=None, help="also write the original tool's JSON layout")
    e.add_argument("--no-per-sample", action="store_true")
    e.add_argument("--seed", type=int, default=None)
    e.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                   help="forward precision of the model encoders (javisbench-fixed; fp16 on CUDA only); "
                   "javisbench-official keeps the original's. Recorded in the results' protocol values")
    e.add_argument("--quiet", action="store_true")
    e.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto",
                   help="per-stage progress: tqdm bars with rate and ETA on a terminal (auto), plain lines (logs, CI), none")
    e.add_argument("--strict", action="store_true", help="any warning (short decode, unusual audio, extra files, "
                   "unofficial weights) makes the exit code 3, like a failure")
    e.add_argument("--allow-failures", action="store_true", help="exit 0 even when samples failed or metrics were "
                   "skipped (the summary still lists them)")
    e.add_argument("--force", action="store_true", help="replace an existing --out / --export-official file that is "
                   "not a javisbench results file (never an input of the run)")
    e.set_defaults(func=cmd_evaluate)

    v = sub.add_parser("validate", help="check a manifest and a samples folder (no model is loaded)")
    v.add_argument("samples_dir", nargs="?")
    v.add_argument("--bench", required=True)
    v.add_argument("--limit", type=int, default=None)
    v.add_argument("--taxonomy", default=None)
    v.add_argument("--no-probe", action="store_true", help="only check that files exist, do not open them")
    v.set_defaults(func=cmd_validate)

    ls = sub.add_parser("ls", help="list metrics, encoders or protocols")
    ls.add_argument("what", choices=["metrics", "encoders", "protocols", "benches", "generators"])
    ls.add_argument("-v", "--verbose", action="store_true")
    ls.set_defaults(func=cmd_ls)

    w = sub.add_parser("weights", help="official checkpoints: list, verify, download, path")
    w.add_argument("action", choices=["list", "verify", "download", "path"])
    w.add_argument("encoders", nargs="*", help="encoder ids (default: all)")
    w.add_argument("--weights-dir", type=Path, default=None)
    w.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto",
                   help="download: progress bars on a terminal (auto), plain lines, or none")
    w.set_defaults(func=cmd_weights)

    d = sub.add_parser("demo", help="offline end-to-end run on synthetic clips and corrupted copies")
    d.add_argument("--out", default="javisbench-demo", help="working folder (default: ./javisbench-demo)")
    d.add_argument("--n", type=int, default=6, help="number of clips")
    d.add_argument("--device", default="cpu")
    d.add_argument("--weights-dir", type=Path, default=None)
    d.add_argument("--generator-steps", type=int, default=12,
                   help="training steps of each of the two tiny reference generators (0: leave them out)")
    d.add_argument("--verbose", action="store_true")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("reference", help="reference statistics for FVD/KVD/FAD")
    rs = r.add_subparsers(dest="ref_cmd", required=True)
    rb = rs.add_parser("build", help="compute reference features from real clips")
    rb.add_argument("real_dir")
    rb.add_argument("--bench", required=True, help="the bench CSV, or a folder bench (landscape, aist++, a YAML)")
    rb.add_argument("--protocol", default=None, help="the protocol the evaluation will use (default: the bench's, "
                    "else javisbench-official); recorded in the file")
    rb.add_argument("--out", required=True, help=".pt (official layout) or .npz")
    rb.add_argument("--device", default="cpu")
    rb.add_argument("--weights-dir", type=Path, default=None)
    rb.add_argument("--cache-dir", type=Path, default=None)
    rb.add_argument("--batch-size", nargs="+", default=8, metavar="N|ENCODER=N",
                    help="as for evaluate: a default, then per-encoder overrides")
    rb.add_argument("--limit", type=int, default=None)
    rb.add_argument("--metrics", nargs="+", default=None, help="set metrics whose features to compute "
                    "(default: every set metric: fvd kvd fad fd_clap ...)")
    rb.set_defaults(func=cmd_reference)

    rp = sub.add_parser("report", help="tables (and an HTML report) from a results file")
    rp.add_argument("results")
    rp.add_argument("--html", default=None)
    rp.add_argument("--crosstab", nargs=2, metavar=("ASPECT_A", "ASPECT_B"), help="per-sample metrics over pairs of categories")
    rp.add_argument("--metrics", nargs="+", default=None, help="metrics for --crosstab (default: all per-sample ones)")
    rp.set_defaults(func=cmd_report)

    lb = sub.add_parser("leaderboard", help="check and add results to the leaderboard; build its tables and page")
    lb.add_argument("action", choices=["build", "add"])
    lb.add_argument("files", nargs="*", help="add: results files (checked as untrusted input; refused with every problem)")
    lb.add_argument("--out", default="leaderboard", help="the board folder: build writes README.md, leaderboard.csv, "
                    "leaderboard.tex and index.html into it (default: leaderboard)")
    lb.add_argument("--results-dir", default=None, help="the entries (default: OUT/results)")
    lb.add_argument("--name", default=None, help="add: the model name shown (default: the file's model.name)")
    lb.add_argument("--link", default=None, help="add: an http(s) link for the model (paper, code)")
    lb.add_argument("--family", default=None, help="add: method family, as the papers group them: T2A+A2V, T2V+V2A or T2AV")
    lb.add_argument("--replace", action="store_true", help="add: replace the entry of the same model, bench and protocol")
    lb.add_argument("--reported-dir", default=None, help="published tables (*.yaml) rendered after the measured "
                    "ones, never ranked with them (default: reported/ beside the results folder, if present)")
    lb.add_argument("--no-reported", action="store_true", help="measured results only")
    lb.set_defaults(func=cmd_leaderboard)

    c = sub.add_parser("compare", help="model B vs model A, per metric and category, paired bootstrap")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--n-boot", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    c.add_argument("--out", default=None)
    c.set_defaults(func=cmd_compare)
    from javisbench.cli_generators import register as _reg_gen
    _reg_gen(sub)
    from javisbench.cli_tables import register as _reg_tables
    _reg_tables(sub)
    from javisbench.meta_eval import register as _reg_meta
    _reg_meta(sub)
    _add_debug(p, top=True)
    return p


def _add_debug(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--debug`` on the command and every subcommand (a traceback instead of one line)."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the full traceback of an error (env JAVISBENCH_DEBUG=1)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if not any("--debug" in act.option_strings for act in child._actions):
                    _add_debug(child)


def main(argv: Sequence[str] | None = None) -> int:
    _offline_env()
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", "absent") is None:
        from javisbench.config import default_workers

        args.workers = default_workers()
    debug = bool(getattr(args, "debug", False)) or os.environ.get("JAVISBENCH_DEBUG") == "1"
    from javisbench.outputs import OutputWriteError
    from javisbench.summary import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_WRITE

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: finished features are in the store; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - every error is one line unless --debug
        if debug:
            raise
        if isinstance(e, OutputWriteError):
            print(f"javisbench: error: {e.strerror}", file=sys.stderr)
            return EXIT_WRITE
        if _is_input_error(e):
            # input errors: one clear line, no traceback
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            print(f"javisbench: error: {_one_line(str(msg))}", file=sys.stderr)
            return EXIT_USAGE
        print(f"javisbench: internal error: {type(e).__name__}: {_one_line(str(e))} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _is_input_error(e: BaseException) -> bool:
    """Errors that describe a bad input (ours are sentences); a bare KeyError('x') is a bug."""
    if isinstance(e, KeyError):
        return bool(e.args) and isinstance(e.args[0], str) and " " in e.args[0]
    return isinstance(e, (ValueError, OSError))


def _one_line(msg: str) -> str:
    return " ".join(msg.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
