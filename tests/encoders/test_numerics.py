"""Encoder numerics: float32 is exact float32, and a sample's features do not depend on its batch
or on the thread count (``javisbench.encoders.base``).

MKL's strict reproducibility mode can only be chosen before MKL's first call, so the GEMM check
runs in a fresh interpreter that imports the encoder base first, as the pipeline does.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from javisbench.encoders.audioclip import AudioCLIPEncoder  # noqa: E402
from javisbench.encoders.base import exact_fp32  # noqa: E402
from javisbench.protocol import OFFICIAL  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

#: one output row of x @ W.T computed with 1, 2, 3, 8 and 339 rows, on 1 and 2 threads; the shapes
#: are AudioCLIP's fc (2048 -> 1024, rows = batch) and FBSP (2048 -> 1025, 113 frames per clip),
#: where MKL's default mode rounds the row differently (GEMV vs GEMM, thread split by rows).
GEMM_CHECK = r"""
import torch
import javisbench.encoders.base  # noqa: F401  (sets MKL_CBWR before MKL's first call)
g = torch.Generator().manual_seed(0)
bad = []
for n_in, n_out, rows in ((2048, 1024, 1), (2048, 1025, 113)):
    w = torch.randn(n_out, n_in, generator=g)
    x = torch.randn(8 * rows, n_in, generator=g)
    ref = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for m in (1, 2, 3, 8):
            y = torch.nn.functional.linear(x[: m * rows], w)[:rows]
            ref = y if ref is None else ref
            if not torch.equal(y, ref):
                bad.append((n_in, n_out, rows, threads, m, float((y - ref).abs().max())))
print("BAD", bad)
"""


def test_gemm_rows_do_not_depend_on_the_batch_or_the_threads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", GEMM_CHECK], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "BAD []", r.stdout[-2000:]


def test_encoders_reset_reduced_precision_modes() -> None:
    torch.set_float32_matmul_precision("medium")      # oneDNN bf16 matmuls on CPU, TF32 on CUDA
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    try:
        AudioCLIPEncoder(OFFICIAL)
        assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
    finally:
        exact_fp32()


def test_float32_matmul_is_float32() -> None:
    """After exact_fp32, a CPU float32 matmul has float32 rounding (bf16 would give ~4e-3)."""
    exact_fp32()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(64, 512, generator=g), torch.randn(512, 96, generator=g)
    ref = a.double() @ b.double()
    err = float(((a @ b).double() - ref).norm() / ref.norm())
    assert err < 1e-6, err


@pytest.mark.parametrize("var", ["ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE"])
def test_reduced_precision_onednn_mode_is_refused(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "BF16")
    with pytest.raises(RuntimeError, match=f"{var}='BF16'.*expected STRICT"):
        AudioCLIPEncoder(OFFICIAL)
    monkeypatch.setenv(var, "strict")
    AudioCLIPEncoder(OFFICIAL)
