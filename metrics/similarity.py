"""Cosine similarity with the exact eps semantics of ``torch.nn.functional.cosine_similarity``.

torch (>= 1.13) normalises each input by its clamped norm first, then takes the dot product:

    cos(a, b) = sum( a / max(|a|, eps) * b / max(|b|, eps) )

which differs from the textbook ``a.b / max(|a||b|, eps)`` only for (near-)zero vectors.  The
original JavisBench code uses ``eps = 1e-6`` everywhere (ImageBind, CLAP, CAVP, AVH,
JavisScore).
"""
from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-6, axis: int = -1) -> np.ndarray:
    """Cosine similarity along ``axis`` with torch's eps rule (see the module docstring).

    Inputs broadcast against each other.  The arithmetic runs in the common floating dtype of
    the inputs (float32 inputs give float32 results, as in torch); integer inputs are promoted
    to float64.

    Args:
        a: (..., D, ...) array.
        b: array broadcastable with ``a``.
        eps: lower clamp on each norm.
        axis: the axis that is reduced.

    Returns:
        The broadcast shape with ``axis`` removed (a 0-d array for two vectors).  Bit-identical for
        equal inputs whatever their memory layout (C, Fortran, strided views).

    Example:
        >>> float(cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])))  # doctest: +ELLIPSIS
        0.7071067811865...
        >>> float(cosine(np.zeros(3), np.ones(3)))
        0.0
    """
    x = np.asarray(a)
    y = np.asarray(b)
    dtype = np.result_type(x, y)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    x, y = np.broadcast_arrays(x, y)
    # The reduced axis last and C-contiguous copies: numpy's sum then adds each row in the same
    # pairwise order whatever the inputs' memory layout, so equal inputs give equal bytes.
    x = np.ascontiguousarray(np.moveaxis(x, axis, -1), dtype=dtype)
    y = np.ascontiguousarray(np.moveaxis(y, axis, -1), dtype=dtype)
    axis = -1
    nx = np.maximum(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), dtype.type(eps))
    ny = np.maximum(np.sqrt(np.sum(y * y, axis=axis, keepdims=True)), dtype.type(eps))
    return np.sum((x / nx) * (y / ny), axis=axis)


def mean_cosine_to(matrix: np.ndarray, vector: np.ndarray, eps: float = 1e-6) -> float:
    """Mean cosine of every row of ``matrix`` to one vector: ``mean_t cos(matrix[t], vector)``.

    Used for AVHScore (frames vs whole-clip audio) and CLIP score (frames vs text).

    Args:
        matrix: (T, D) rows, T >= 1.
        vector: (D,) or (1, D).
        eps: norm clamp (torch semantics).

    Returns:
        The mean as a Python float (cosines in the input dtype, mean accumulated in float64).

    Raises:
        ValueError: wrong shapes or an empty matrix.

    Example:
        >>> mean_cosine_to(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 0.0]))
        0.5
    """
    m = np.asarray(matrix)
    v = np.asarray(vector)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if m.ndim != 2 or v.ndim != 1:
        raise ValueError(f"expected matrix (T, D) and vector (D,) or (1, D), got {m.shape} and {np.shape(vector)}")
    if m.shape[1] != v.shape[0]:
        raise ValueError(f"dimension mismatch: matrix rows have D={m.shape[1]}, vector has D={v.shape[0]}")
    if m.shape[0] == 0:
        raise ValueError("matrix has no rows (T=0): nothing to average")
    return float(np.mean(cosine(m, v[None, :], eps=eps), dtype=np.float64))


def mean_rowwise_cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """``mean_t cos(a[t], b[t])`` for two aligned (T, D) sequences (CAVP's per-sample score).

    Raises:
        ValueError: the two have different shapes or no rows (the original fails on that).

    Example:
        >>> mean_rowwise_cosine(np.eye(2), np.array([[1.0, 0.0], [1.0, 0.0]]))
        0.5
    """
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"expected two (T, D) arrays of the same shape, got {x.shape} and {y.shape}")
    return float(np.mean(cosine(x, y, eps=eps), dtype=np.float64))
