"""Benchmark taxonomy: data (aspects -> categories -> subcategories), label parsing, splits, breakdown.

A plain top-level package that never imports ``javisbench``; it needs numpy and PyYAML (and
``metrics.bootstrap`` for the breakdown's CIs, imported when ``taxonomy.breakdown`` is first used).

    >>> import taxonomy
    >>> tax = taxonomy.load_taxonomy()          # the built-in JavisBench taxonomy
    >>> tax.name, tax.version, len(tax.aspects), tax.n_categories, tax.n_subcategories
    ('javisbench', '1.0', 5, 19, 68)
"""
from __future__ import annotations

from typing import Any

from .labels import LabelError, Labels, parse_label_cell, parse_labels, parse_subcategory_cell
from .model import (
    Aspect,
    Category,
    Subcategory,
    Taxonomy,
    TaxonomyError,
    builtin_taxonomies,
    load_taxonomy,
    slugify,
)
from .splits import Clause, Where, WhereError, apply_where, mini_split, parse_where

_BREAKDOWN = {"Cell", "breakdown", "by_subcategory", "cell_to_json", "crosstab", "summarize", "to_json"}

__all__ = [
    "Aspect",
    "Category",
    "Clause",
    "LabelError",
    "Labels",
    "Subcategory",
    "Taxonomy",
    "TaxonomyError",
    "Where",
    "WhereError",
    "apply_where",
    "builtin_taxonomies",
    "load_taxonomy",
    "mini_split",
    "parse_label_cell",
    "parse_labels",
    "parse_subcategory_cell",
    "parse_where",
    "slugify",
    *sorted(_BREAKDOWN),
]


def __getattr__(name: str) -> Any:
    # The breakdown pulls in metrics.bootstrap; load it on first use so that loading a taxonomy
    # or parsing labels (e.g. `javisbench validate`) stays minimal.
    if name in _BREAKDOWN:
        from . import breakdown as _b

        return getattr(_b, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
