"""The encoder contract.

An encoder is cheap to construct (identity and contract only) and explicit to load.  The
pipeline calls, per run::

    enc = EncoderClass(protocol, device=..., batch_size=...)
    enc.load(weights_dir)                       # MissingWeightsError -> its metrics are skipped
    for each decoded sample:  x = enc.prepare(clip, text, audio_text)   # pure, CPU, per sample
    for batches of prepared inputs:  feats = enc.encode([x0, x1, ...])  # batched across samples

``prepare`` is where the protocol's view of a clip is computed (frame sampling, resizing,
audio windows); it must be a pure function of (clip, prompts, protocol).  Anything wrong with
the sample (too short, silent, NaN) raises ``SampleError`` and becomes a recorded failure.
``encode`` returns, per sample, a dict of named float32 arrays; those rows are what the feature
store keeps and what metrics read.

Every encoder declares its contract as data:

* ``protocol_fields``: the protocol values ``prepare``/``encode`` read.  They, and only they (plus
  the decode fields every clip goes through), enter the feature-store key, so changing a
  statistics setting (bootstrap, CI level, seed) or another encoder's field never invalidates
  this encoder's features.  A test reads each encoder's source and checks the declaration.
* ``outputs``: feature name -> shape (a letter for a per-clip length).  Metrics name the features
  they read from these (a test checks it); a stored entry missing one of them is recomputed.
"""
from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from javisbench.weights import WeightFile, require

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.decode import DecodedClip
    from javisbench.protocol import Protocol

# ---------------------------------------------------------------------------------------------
# Numerics: same input -> same bytes out, whatever the batch, the thread count or the run order.
#
# MKL (PyTorch's CPU float32 GEMM: nn.Linear, matmul, the native convolution path) picks its
# kernel and its split of the work by problem size and thread count: one row of ``X @ W.T``
# rounds differently when X has 1 row (GEMV) or 2 (GEMM), or 113 rows or 339 on 2 threads
# (1e-7 relative; a deep net amplifies it: 5e-4 on the AudioCLIP embedding).  MKL's conditional
# numerical reproducibility in strict mode (MKL_CBWR=AUTO,STRICT) fixes the reduction order per
# output element, so a row no longer depends on the other rows or on the threads, at no
# measurable cost.  MKL reads the variable once, at its first call in the process: it is set
# here, when the first encoder module is imported (the pipeline imports an encoder before it
# computes anything); a value the user set is kept.  ONEDNN_DEFAULT_FPMATH_MODE (read when
# torch is imported) must stay STRICT: BF16 lets oneDNN run float32 convolutions in bfloat16 on
# AMX / AVX512-BF16 CPUs (2e-3 relative); ``exact_fp32`` refuses any other value.
# ---------------------------------------------------------------------------------------------
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")
FPMATH_ENV = ("ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE")


def exact_fp32() -> None:
    """Make float32 mean IEEE float32 on every backend, with reproducible algorithm choice.

    * no TF32 / bfloat16 inside float32 matmuls (CUDA, and oneDNN on CPU, which uses bf16 when
      the matmul precision is "medium") nor inside cuDNN convolutions (TF32 by default);
    * cuDNN: no autotuning (its timing-based choice varies run to run), deterministic algorithms.

    Called by every ``Encoder.__init__``; idempotent.  Raises RuntimeError if the oneDNN fpmath
    environment variable asks for reduced precision (it cannot be changed once torch is loaded).
    """
    import torch

    for var in FPMATH_ENV:
        value = os.environ.get(var, "STRICT")
        if value.strip().upper() != "STRICT":
            raise RuntimeError(f"{var}={value!r} lets oneDNN compute float32 in lower precision; "
                               f"expected STRICT (or unset) for exact float32 features")
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class SampleError(ValueError):
    """A per-sample problem (the run continues; the sample is recorded in ``failures``)."""


Prepared = dict[str, Any]
Features = dict[str, np.ndarray]


class Encoder(abc.ABC):
    id: ClassVar[str]                       # registry name, part of every feature key
    version: ClassVar[str] = "1"            # bump when prepare/encode change numbers
    weight_files: ClassVar[tuple[WeightFile, ...]] = ()
    uses_text: ClassVar[bool] = False       # prompts enter the feature key
    description: ClassVar[str] = ""
    protocol_fields: ClassVar[tuple[str, ...]] = ()   # protocol values this encoder reads
    outputs: ClassVar[dict[str, str]] = {}   # feature name -> shape, e.g. "(T, 512)" (T: per clip)
    float64_outputs: ClassVar[tuple[str, ...]] = ()   # outputs stored in float64 (all others float32)

    def __init__(self, protocol: "Protocol", device: str = "cpu", batch_size: int = 8) -> None:
        self.protocol = protocol
        self.device = device
        self.batch_size = int(batch_size)
        self.weights_sha256: dict[str, str] = {}
        self.loaded = False                  # set by the pipeline after a successful load()
        exact_fp32()

    # -- weights ------------------------------------------------------------------------------
    def weight_paths(self, weights_dir: Path) -> dict[str, Path]:
        """Paths of every needed file; raises MissingWeightsError naming the first absent one."""
        return {wf.name: require(self.id, wf, Path(weights_dir)) for wf in self.weight_files}

    @abc.abstractmethod
    def load(self, weights_dir: Path) -> None:
        """Read weights (``torch.load(..., weights_only=True)``) and move to ``self.device``."""

    # -- data -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, clip: "DecodedClip", text: str, audio_text: str) -> Prepared:
        """The model inputs of one sample (numpy), from the decoded clip under the protocol."""

    @abc.abstractmethod
    def encode(self, batch: list[Prepared]) -> list[Features]:
        """Features of a batch of prepared samples, one dict of float32 arrays per sample."""

    def feature_protocol(self) -> dict[str, Any]:
        """The protocol values this encoder's features depend on (decode fields + its own)."""
        # a model's forward precision changes its features; a weight-free encoder has none
        extra = ("precision",) if type(self).weight_files else ()
        return feature_protocol_values(self.protocol, tuple(type(self).protocol_fields) + extra)

    def feature_fingerprint(self) -> str:
        """Short hash of :meth:`feature_protocol`: the protocol part of this encoder's feature keys."""
        import hashlib
        import json

        blob = json.dumps(self.feature_protocol(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def fingerprint(self) -> str:
        """Encoder identity in the feature-store key: id, code version and weights hashes."""
        w = ",".join(f"{k}={v}" for k, v in sorted(self.weights_sha256.items()))
        return f"{self.id}@{self.version}[{w}]"


#: protocol fields every decoded clip depends on (the decoder runs before any encoder)
DECODE_FIELDS = ("decode_color_matrix", "decode_apply_rotation")


def feature_protocol_values(protocol: "Protocol", fields: tuple[str, ...]) -> dict[str, Any]:
    """``{field: value}`` of the decode fields and ``fields``, sorted by name."""
    values = protocol.values()
    missing = [f for f in fields if f not in values]
    if missing:
        raise ValueError(f"protocol {protocol.name} has no field(s) {missing}")
    return {f: values[f] for f in sorted(set(DECODE_FIELDS) | set(fields))}
