"""The Python API: evaluate a folder of generated clips and work with the results in Python.

Example::

    import javisbench
    r = javisbench.evaluate("samples/", bench="javisbench-mini", metrics=["fvd", "clip_score"], device="cuda")
    r.overall["fvd"]["value"]          # the number and its interval: ci_low, ci_high, n
    r.to_pandas()                      # tidy: one row per (sample, metric), category columns
    r.cells_frame()                    # one row per (aspect, category, metric) with n and CI
    r.save("results.json")
    r2 = javisbench.load_results("results.json")

The ``javisbench evaluate`` command is a thin layer over :func:`evaluate`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Results", "evaluate", "load_results"]


class Results:
    """One run's results (the results-file schema of :mod:`javisbench.results`) with accessors.

    ``data`` is the plain dict, exactly what :meth:`save` writes.
    """

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.data: dict[str, Any] = dict(data)
        self.path = path

    # -- the numbers ------------------------------------------------------------------------
    @property
    def overall(self) -> dict[str, dict[str, Any]]:
        """Metric key -> ``{value, ci_low, ci_high, n, n_failed, ...}``."""
        return self.data.get("overall") or {}

    @property
    def per_category(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Aspect -> category -> metric key -> cell (empty without category labels)."""
        return self.data.get("per_category") or {}

    @property
    def per_sample(self) -> dict[str, dict[str, float | None]]:
        """Sample id -> metric key -> value (None where the sample failed)."""
        return self.data.get("per_sample") or {}

    @property
    def skipped(self) -> dict[str, str]:
        """Metric key -> why it has no number (the file or package it needs)."""
        return self.data.get("skipped") or {}

    @property
    def failures(self) -> dict[str, dict[str, str]]:
        """Sample id -> stage -> message."""
        return self.data.get("failures") or {}

    @property
    def sample_ids(self) -> list[str]:
        return list(self.data.get("sample_ids") or [])

    @property
    def metrics(self) -> list[str]:
        return list(self.data.get("metrics") or {})

    def value(self, key: str) -> float | None:
        """The overall value of one metric (None when skipped or failed)."""
        cell = self.overall.get(key)
        return None if cell is None else cell.get("value")

    # -- tables ------------------------------------------------------------------------------
    def to_pandas(self, labels: bool = True) -> "pd.DataFrame":
        """Tidy per-sample frame: ``n_samples * n_per_sample_metrics`` rows, columns ``sample_id,
        metric, value`` and one per taxonomy aspect (see :func:`javisbench.frames.samples_frame`)."""
        from javisbench.frames import samples_frame

        return samples_frame(self.data, labels=labels)

    def cells_frame(self, overall: bool = True) -> "pd.DataFrame":
        """One row per (aspect, category, metric) cell with ``value, ci_low, ci_high, n``
        (see :func:`javisbench.frames.cells_frame`)."""
        from javisbench.frames import cells_frame

        return cells_frame(self.data, overall=overall)

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the results JSON (atomically); ``load_results`` reads it back."""
        from javisbench.results import write_results

        self.path = write_results(self.data, path)
        return self.path

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v['value']:.4g}" for k, v in self.overall.items() if v.get("value") is not None)
        return (f"Results({len(self.sample_ids)} samples; {shown or 'no values'}"
                f"{'; skipped: ' + ', '.join(self.skipped) if self.skipped else ''})")


def load_results(path: str | os.PathLike) -> Results:
    """Read a results file written by ``evaluate`` (or :meth:`Results.save`)."""
    from javisbench.results import read_results

    return Results(read_results(path), Path(path))


def _config_fields() -> set[str]:
    from javisbench.config import EvalConfig

    return {f.name for f in dataclasses.fields(EvalConfig)}


def evaluate(samples: str | os.PathLike | None, bench: str | os.PathLike, metrics: Iterable[str] | None = None,
             device: str = "cpu", *, out: str | os.PathLike | None = None, progress: str | bool = "auto",
             encoders: Mapping[str, Any] | None = None, **options: Any) -> Results:
    """Score a folder of generated clips against a benchmark.

    Args:
        samples: folder with ``sample_{i:04d}.mp4`` (+ ``.wav``) for manifest row i (a folder bench:
            the clips themselves); None: the manifest's ``pred_video_path`` column.
        bench: a JavisBench-style CSV, a bench name (``javisbench-mini``, ``landscape`` ...) or a
            folder-bench YAML.
        metrics: metric keys (default: every metric; ``javisbench ls metrics``).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        out: also write the results JSON there.
        progress: ``auto`` | ``bar`` | ``plain`` | ``none`` (see :mod:`javisbench.progress`).
        encoders: encoder id -> Encoder subclass or instance used instead of the registry's.
        **options: any other field of :class:`javisbench.config.EvalConfig`: ``protocol``,
            ``reference``, ``reference_dir``, ``weights_dir``, ``cache_dir``, ``batch_size``,
            ``workers``, ``model_name``, ``model_meta``, ``limit``, ``where``, ``subset``,
            ``subset_seed``, ``taxonomy``, ``per_sample``, ``export_official``, ``seed``.
    Returns:
        :class:`Results`.
    Raises:
        TypeError: an unknown option; ValueError: bad input (one line naming the file or option).
    """
    from javisbench.config import EvalConfig
    from javisbench.evaluate import evaluate as _run
    from javisbench.progress import resolve_mode

    unknown = sorted(set(options) - _config_fields())
    if unknown:
        raise TypeError(f"javisbench.evaluate() got unknown option(s) {', '.join(unknown)}; "
                        f"expected some of {', '.join(sorted(_config_fields() - {'samples_dir', 'bench'}))}")
    resolve_mode(progress)                      # a bad mode fails before any work
    paths = {k: Path(v) for k, v in options.items()
             if k in ("reference", "reference_dir", "weights_dir", "cache_dir", "export_official") and v is not None}
    if isinstance(metrics, str):
        metrics = [metrics]
    cfg = EvalConfig(samples_dir=None if samples is None else Path(samples), bench=Path(bench),
                     out=None if out is None else Path(out), metrics=None if metrics is None else list(metrics),
                     device=device, progress=progress, **{**options, **paths})
    data = _run(cfg, encoders=encoders)
    return Results(data, cfg.out)
