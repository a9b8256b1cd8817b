"""Row subsets: a seeded mini split, and category filters (``--where``).

``mini_split`` draws a reproducible random subset of rows.  It is *ours*, not the official
JavisBench-mini: that one is a fixed 1,000-row CSV (``JavisBench-mini.csv``) released with the
benchmark, and its numbers are only comparable when that file is passed as its own manifest (and
its own ground-truth cache).  Use ``mini_split`` for quick looks at other benches or for
sub-sampling experiments.

Filter syntax (``parse_where``): clauses separated by ``,``; each clause is ``aspect=value``
with several values joined by ``|``.  A row passes a clause when it carries *any* of the clause's
categories (it may carry others too: multi-label aspects), and passes the filter when it passes
*every* clause.  Naming the same aspect in two clauses therefore asks for both categories
(``sound_type=musical,sound_type=speech`` keeps rows with music *and* speech), while
``sound_type=musical|speech`` keeps rows with either.  Aspects and categories are matched
case-insensitively on key or title (spaces, ``-`` and ``_`` are interchangeable); a unique prefix
is enough.  An empty expression keeps every row.

Example:
    >>> from taxonomy.model import load_taxonomy
    >>> tax = load_taxonomy("javisbench")
    >>> w = parse_where("sound_type=Musical|speech, Temporal=simultaneous", tax)
    >>> str(w)
    'sound_type=musical|speech,temporal=simultaneous_events'
    >>> mini_split(10, size=4, seed=0).tolist() == mini_split(10, size=4, seed=0).tolist()
    True
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .labels import Labels
from .model import Taxonomy

__all__ = ["Clause", "Where", "WhereError", "apply_where", "mini_split", "parse_where"]


class WhereError(ValueError):
    """A filter expression names an unknown or ambiguous aspect/category, or is malformed."""


def mini_split(n_rows: int, size: int = 1000, seed: int = 0) -> np.ndarray:
    """A reproducible random subset of ``size`` distinct rows of ``0..n_rows-1``, sorted ascending.

    ``idx = sort(default_rng(seed).choice(n_rows, size, replace=False))``: the same
    ``(n_rows, size, seed)`` always gives the same rows (numpy's ``Generator`` stream is stable).
    Not the official JavisBench-mini (a fixed file; pass it as its own manifest).

    Returns:
        int64 array of shape ``(size,)``.

    Raises:
        ValueError: ``size`` is not in ``1..n_rows``, or ``n_rows`` is negative.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if not 1 <= size <= n_rows:
        raise ValueError(f"mini split of size {size} from {n_rows} rows: expected 1 <= size <= n_rows")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class Clause:
    """Rows carrying any of ``categories`` (category keys) in aspect ``aspect``."""

    aspect: str
    categories: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.aspect}={'|'.join(self.categories)}"


@dataclass(frozen=True)
class Where:
    """A conjunction of clauses over one taxonomy (empty: every row)."""

    taxonomy_name: str
    clauses: tuple[Clause, ...] = ()

    def __str__(self) -> str:
        """Canonical form (keys only); ``parse_where(str(w), tax) == w``."""
        return ",".join(str(c) for c in self.clauses)


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", "_", s.strip().lower())


def _match(value: str, options: Iterable[tuple[str, tuple[str, ...]]], what: str, context: str) -> str:
    """Resolve ``value`` to one option key: exact key/title match first, then a unique prefix."""
    opts = list(options)
    v = _norm(value)
    if not v:
        raise WhereError(f"empty {what} name in {context}")
    exact = {key for key, names in opts if any(_norm(n) == v for n in names)}
    if len(exact) == 1:
        return exact.pop()
    prefix = {key for key, names in opts if any(_norm(n).startswith(v) for n in names)}
    if len(prefix) == 1:
        return prefix.pop()
    choices = ", ".join(f"{key} ({names[1]})" if len(names) > 1 else key for key, names in opts)
    if prefix or exact:
        hits = ", ".join(sorted(prefix or exact))
        raise WhereError(f"{what} {value!r} in {context} is ambiguous: it matches {hits}; choices: {choices}")
    raise WhereError(f"unknown {what} {value!r} in {context}; choices: {choices}")


def parse_where(expr: str, taxonomy: Taxonomy) -> Where:
    """Parse ``"aspect=value|value,aspect=value"`` into a ``Where`` over ``taxonomy``.

    Raises:
        WhereError: a clause without ``=``, an empty value, or an unknown/ambiguous aspect or
            category (the message lists the choices).
    """
    clauses: list[Clause] = []
    for raw in expr.split(","):
        if not raw.strip():
            if expr.strip():
                raise WhereError(f"empty clause in filter {expr!r}; expected 'aspect=category[|category...]' separated by ','")
            continue
        if raw.count("=") != 1:
            raise WhereError(
                f"clause {raw.strip()!r} in filter {expr!r}: expected 'aspect=category[|category...]' "
                f"(aspects: {', '.join(taxonomy.aspect_keys)})"
            )
        left, right = raw.split("=")
        akey = _match(
            left, ((a.key, (a.key, a.title, a.column)) for a in taxonomy.aspects), "aspect", f"filter {expr!r}"
        )
        aspect = taxonomy.aspect(akey)
        cats: list[str] = []
        for val in right.split("|"):
            ckey = _match(
                val,
                ((c.key, (c.key, c.title)) for c in aspect.categories),
                f"category of aspect {akey!r}",
                f"filter {expr!r}",
            )
            if ckey not in cats:
                cats.append(ckey)
        # Canonical order (taxonomy order) so equal filters compare and print equal.
        order = {c.key: c.index for c in aspect.categories}
        clauses.append(Clause(akey, tuple(sorted(cats, key=order.__getitem__))))
    return Where(taxonomy.name, tuple(clauses))


def apply_where(labels: Labels, where: Where) -> np.ndarray:
    """Sorted row positions (int64) of the rows passing every clause of ``where``.

    Raises:
        WhereError: ``where`` was parsed against another taxonomy, or names an aspect/category
            this taxonomy lacks.
    """
    tax = labels.taxonomy
    if where.taxonomy_name != tax.name:
        raise WhereError(f"filter was parsed for taxonomy {where.taxonomy_name!r}; labels use {tax.name!r}")
    keep = np.ones(labels.n_rows, dtype=bool)
    for cl in where.clauses:
        try:
            aspect = tax.aspect(cl.aspect)
            cols = [aspect.category(c).index for c in cl.categories]
        except KeyError as e:
            raise WhereError(str(e.args[0])) from None
        keep &= labels.membership(cl.aspect)[:, cols].any(axis=1)
    return np.flatnonzero(keep).astype(np.int64)
