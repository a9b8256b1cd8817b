"""Shared setup of the reference-model tests."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread while a module of small-kernel model tests runs (on a shared 2-core box
    threading only adds barrier stalls); the rest of the session keeps its thread count."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
