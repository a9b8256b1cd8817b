"""The run state, below the pipeline: what a run was asked to do, and what happened.

* :class:`Run` is the frozen description of a run's inputs (configuration, protocol, rows,
  sample files, metrics, labels, weights folder), built once by ``evaluate.plan_run`` before any
  model is loaded.
* :class:`RunLog` collects what the stages found: failed samples, warnings, skipped metrics,
  unofficial weights, timings, the reference used.  Each stage returns its own log and the
  orchestrator merges them (:meth:`RunLog.merge`), so no stage mutates another's state.
* :class:`Scores` holds the per-sample values and set-metric inputs computed from features.

Nothing here imports the pipeline: ``evaluate``, ``results``, ``breakdown`` and ``reference`` all
import this module, never each other in a circle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.config import EvalConfig
    from javisbench.manifest import Manifest, SampleFiles
    from javisbench.protocol import Protocol
    from javisbench.suite import Metric


@dataclass(frozen=True)
class Run:
    """A run's inputs, resolved and validated (no model loaded)."""

    config: "EvalConfig"
    protocol: "Protocol"
    manifest: "Manifest"
    samples: tuple["SampleFiles", ...]
    metrics: tuple["Metric", ...]
    weights_dir: Path
    labels: Any = None                             # taxonomy.Labels of the scored rows, or None
    taxonomy: Any = None                           # taxonomy.Taxonomy, or None
    bench_def: Any = None                          # javisbench.benches.FolderBench for a folder bench

    @property
    def n_rows(self) -> int:
        return len(self.manifest)

    def metric(self, key: str) -> "Metric":
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)


@dataclass
class RunLog:
    """What a stage found.  Merging keeps the first reason per metric and every message."""

    failures: dict[str, dict[str, str]] = field(default_factory=dict)    # sample id -> stage -> message
    warnings: dict[str, list[str]] = field(default_factory=dict)         # sample id -> messages
    skipped: dict[str, str] = field(default_factory=dict)                # metric -> reason
    unofficial_weights: dict[str, str] = field(default_factory=dict)     # encoder:file -> why
    timing: dict[str, Any] = field(default_factory=dict)
    reference_info: dict[str, Any] | None = None                         # what set metrics compared against

    def fail(self, sample_id: str, stage: str, message: str) -> None:
        self.failures.setdefault(sample_id, {})[stage] = message

    def warn(self, sample_id: str, message: str) -> None:
        lst = self.warnings.setdefault(sample_id, [])
        if message not in lst:
            lst.append(message)

    def skip(self, metric: str, reason: str) -> None:
        self.skipped.setdefault(metric, reason)

    def merge(self, other: "RunLog") -> "RunLog":
        """Fold ``other`` into this log (in place) and return self."""
        for sid, stages in other.failures.items():
            for stage, msg in stages.items():
                self.fail(sid, stage, msg)
        for sid, msgs in other.warnings.items():
            for m in msgs:
                self.warn(sid, m)
        for k, reason in other.skipped.items():
            self.skip(k, reason)
        self.unofficial_weights.update(other.unofficial_weights)
        for k, v in other.timing.items():
            if isinstance(v, dict) and isinstance(self.timing.get(k), dict):
                self.timing[k] = {**self.timing[k], **v}
            else:
                self.timing[k] = v
        if other.reference_info is not None:
            self.reference_info = other.reference_info
        return self


#: sample id -> encoder id -> feature name -> array
FeatureTable = dict[str, dict[str, dict[str, np.ndarray]]]


@dataclass
class Scores:
    """Numbers computed from features, ready to be broken down into cells."""

    per_sample: dict[str, np.ndarray]               # metric -> (N,) values, NaN where failed
    set_inputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]   # metric -> (row idx, fake, real)
    # set metrics whose fake and real rows do not correspond (every window of every clip, as
    # MM-Diffusion's evaluator collects them): row idx gives each fake row's sample, real is apart
    unpaired: set[str] = field(default_factory=set)
