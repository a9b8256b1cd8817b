"""Cosine similarity: torch.nn.functional.cosine_similarity's eps semantics, checked against torch itself."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.similarity import cosine, mean_cosine_to


@pytest.fixture(scope="module")
def torch():  # noqa: ANN201
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-7), (np.float64, 1e-15)])
@pytest.mark.parametrize("eps", [1e-6, 1e-8, 0.5])
def test_cosine_matches_torch(torch, dtype: type, atol: float, eps: float) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 4, 16)).astype(dtype)
    b = rng.normal(size=(6, 1, 16)).astype(dtype)            # broadcast, as JavisScore's (M,N,D) vs (M,1,D)
    a[0, 0] = 0.0                                             # zero vector
    a[1, 1] *= 1e-7                                           # norm below eps
    b[2, 0] *= 1e-9
    ref = torch.nn.functional.cosine_similarity(torch.from_numpy(a), torch.from_numpy(b), dim=-1, eps=eps).numpy()
    got = cosine(a, b, eps=eps, axis=-1)
    assert got.dtype == dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


def test_cosine_other_axis_matches_torch(torch) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    ref = torch.nn.functional.cosine_similarity(torch.from_numpy(a), torch.from_numpy(b), dim=0, eps=1e-6).numpy()
    np.testing.assert_allclose(cosine(a, b, axis=0), ref, rtol=0, atol=1e-15)


def test_mean_cosine_to() -> None:
    rng = np.random.default_rng(2)
    m, v = rng.normal(size=(10, 6)), rng.normal(size=6)
    want = np.mean([np.dot(r, v) / np.linalg.norm(r) / np.linalg.norm(v) for r in m])
    assert mean_cosine_to(m, v) == pytest.approx(want, abs=1e-14)
    assert mean_cosine_to(m, v[None, :]) == pytest.approx(want, abs=1e-14)
    with pytest.raises(ValueError, match="dimension mismatch"):
        mean_cosine_to(m, v[:5])
    with pytest.raises(ValueError, match="no rows"):
        mean_cosine_to(np.zeros((0, 6)), v)
