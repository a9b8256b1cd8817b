"""Pure numerics on feature arrays: the metric cores of javisbench.

Every function here takes numpy arrays and returns numbers or arrays.  Nothing in this package
does file I/O, loads a model, imports torch or imports ``javisbench``; numpy and scipy are the
only hard dependencies (OpenCV and librosa are imported lazily by the AV-Align functions that
need them).

Modules:

* :mod:`metrics.frechet`: Fréchet distance (FVD, FAD), the official float32 SVD rule and a
  float64 ``scipy.linalg.sqrtm`` variant; FD extrapolated to infinitely many rows.
* :mod:`metrics.size_correction`: set metrics extrapolated to ``n = inf`` (Chong & Forsyth's
  FID_inf fit against ``1 / n``), for comparisons between sets of different sizes.
* :mod:`metrics.kernel`: polynomial-kernel MMD² (KVD), the official single centred estimate and
  seeded subset averaging.
* :mod:`metrics.similarity`: cosine similarity with ``torch.nn.functional.cosine_similarity``'s
  eps semantics.
* :mod:`metrics.avh`: AVHScore, JavisScore and the JavisScore window enumeration.
* :mod:`metrics.av_align`: AV-Align (optical-flow peaks vs audio onsets).
* :mod:`metrics.desync`: DeSync grouping of Synchformer segments and offset aggregation.
* :mod:`metrics.bootstrap`: bootstrap intervals, each labelled a confidence interval (``"ci"``) or
  an estimator's sampling spread (``"spread"``), and paired/unpaired tests.
"""
from __future__ import annotations

__all__ = ["av_align", "avh", "bootstrap", "desync", "frechet", "kernel", "similarity", "size_correction"]
