"""Label parsing: manifest cells -> per-row category (and subcategory) indices, validated.

Cell form (the official JavisBench CSV): for aspect *a*, column ``cat{a}_ind`` holds one integer
category index (``3``) or, for a multi-label aspect, a comma-separated string of distinct indices
(``"0,3"``); a sample belongs to every category it lists.  Integral floats (``3.0``, what a CSV
reader gives for an integer column with gaps), surrounding whitespace and a list/tuple of
integers (YAML benches) are accepted.  The original crashes on NaN (``int(nan)``); here every bad
cell is a ``LabelError`` naming the row, the column, the value got and what is expected.

Subcategory labels (optional; the official CSV has none, evaluation never needs them): when the
aspect's ``subcategory_column`` (``subcat{a}_ind``) exists, its cell holds *flat* subcategory
indices, numbered across the aspect in taxonomy order (Event Scenario: Natural's nine are 0-8,
Living's seven 9-15, ...), in the same single-int / comma-separated form.  An empty cell (``""``,
NaN, None) means "no subcategory" (several categories have none).  Each listed subcategory must
belong to a category the row lists in the aspect's category column; a single-label aspect takes at
most one.

Rows are numbered from 0 in manifest order (row *i* is ``sample_{i:04d}``); pass ``row_ids`` to
have messages name samples instead.

Example:
    >>> from taxonomy.model import load_taxonomy
    >>> tax = load_taxonomy("javisbench")
    >>> parse_label_cell(" 0, 3 ", tax.aspect("sound_type"), row=7)
    (0, 3)
    >>> rows = [dict(cat0_ind=0, cat1_ind=0, cat2_ind="0,3", cat3_ind=2, cat4_ind="1"),
    ...         dict(cat0_ind=4, cat1_ind=2.0, cat2_ind=3, cat3_ind=0, cat4_ind="0,2")]
    >>> labels = parse_labels(rows, tax)
    >>> labels.indices("sound_type", "musical").tolist()
    [0, 1]
"""
from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .model import Aspect, Taxonomy

__all__ = ["LabelError", "Labels", "parse_label_cell", "parse_labels", "parse_subcategory_cell"]

_INT_RE = re.compile(r"^\+?(\d+)(?:\.0*)?$")    # "3", "+3", "3.0"
_NEG_RE = re.compile(r"^-\d+(?:\.\d*)?$")
_MISSING_STR = {"", "nan", "none", "null", "na", "n/a"}
_MAX_LISTED_ERRORS = 20


class LabelError(ValueError):
    """A label cell or label column is invalid; the message says where, what was got and what is expected."""


def _expected(aspect: Aspect, n: int, what: str) -> str:
    if not n:
        return f"no {what} index (aspect {aspect.key!r} has no {what})"
    if aspect.multi_label:
        return (f"an integer {what} index in 0..{n - 1}, or several distinct ones separated by commas "
                f"such as '0,3' (aspect {aspect.key!r} is multi-label)")
    return f"exactly one integer {what} index in 0..{n - 1} (aspect {aspect.key!r} is single-label)"


def _one_int(part: Any) -> int | str:
    """One label entry -> int, or a short reason string when it is not a non-negative integer."""
    if part is None:
        return "missing label"
    if isinstance(part, bool) or isinstance(part, np.bool_):
        return "a boolean is not an index"
    if isinstance(part, numbers.Integral):
        v = int(part)
        return v if v >= 0 else "negative index"
    if isinstance(part, numbers.Real):
        f = float(part)
        if math.isnan(f):
            return "missing label (NaN)"
        if not math.isfinite(f) or not f.is_integer():
            return "not an integer"
        return int(f) if f >= 0 else "negative index"
    if isinstance(part, str):
        s = part.strip()
        if s.lower() in _MISSING_STR:
            return "missing label" if not s else f"missing label ({s!r})"
        m = _INT_RE.match(s)
        if m:
            return int(m.group(1))
        return "negative index" if _NEG_RE.match(s) else "not an integer"
    return f"unsupported type {type(part).__name__}"


def _is_missing(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, numbers.Real) and not isinstance(cell, (bool, np.bool_, numbers.Integral)):
        return math.isnan(float(cell))
    return isinstance(cell, str) and cell.strip().lower() in _MISSING_STR


def _parse_indices(
    cell: Any, aspect: Aspect, row: int | str, column: str, n: int, what: str, allow_empty: bool
) -> tuple[int, ...]:
    def err(reason: str) -> LabelError:
        return LabelError(
            f"row {row}, column {column!r} ({aspect.key}): got {cell!r} ({reason}); expected "
            f"{_expected(aspect, n, what)}"
        )

    if allow_empty and _is_missing(cell):
        return ()
    if isinstance(cell, (list, tuple, np.ndarray)):
        parts: list[Any] = list(np.asarray(cell, dtype=object).ravel()) if isinstance(cell, np.ndarray) else list(cell)
        if not parts:
            if allow_empty:
                return ()
            raise err("empty list")
    elif isinstance(cell, str) and "," in cell:
        parts = cell.split(",")
    else:
        parts = [cell]

    out: list[int] = []
    for p in parts:
        v = _one_int(p)
        if isinstance(v, str):
            if len(parts) > 1 and isinstance(p, str) and not p.strip():
                v = "empty entry between commas"
            raise err(v)
        if v >= n:
            raise err(f"index {v} out of range: aspect {aspect.key!r} has {n} {what}(s)")
        out.append(v)
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        raise err(f"index {dup[0]} listed twice")
    if len(out) > 1 and not aspect.multi_label:
        raise err(f"{len(out)} labels for a single-label aspect")
    return tuple(sorted(out))


def parse_label_cell(cell: Any, aspect: Aspect, row: int | str) -> tuple[int, ...]:
    """Parse one category cell of ``aspect``'s column into sorted category indices.

    Accepts an int, an integral float, a string ``"3"`` / ``"0,3"`` / ``" 0, 3 "`` or a list of
    ints.  The result has exactly one index for a single-label aspect and at least one for a
    multi-label aspect.

    Raises:
        LabelError: NaN/None/empty, not an integer, negative, ``>= aspect.n_categories``, an index
            listed twice, or more than one index for a single-label aspect.  The message names
            ``row``, the column, the value and the expected form.
    """
    return _parse_indices(cell, aspect, row, aspect.column, aspect.n_categories, "category", allow_empty=False)


def parse_subcategory_cell(cell: Any, aspect: Aspect, row: int | str) -> tuple[int, ...]:
    """Parse one subcategory cell (flat indices across ``aspect``); empty/NaN/None -> ``()``.

    Raises:
        LabelError: as ``parse_label_cell``, with the range ``0..len(aspect.subcategories)-1``.
    """
    return _parse_indices(
        cell, aspect, row, aspect.subcategory_column, len(aspect.subcategories), "subcategory", allow_empty=True
    )


@dataclass(frozen=True, eq=False)
class Labels:
    """Per-row labels of a manifest under a taxonomy.

    ``categories[aspect_key][i]`` is the sorted tuple of category indices of row ``i``;
    ``subcategories[aspect_key][i]`` the sorted flat subcategory indices, present only for aspects
    whose subcategory column was given.  Validated on construction (every aspect present, same
    row count, indices in range, arity of single-label aspects).
    """

    taxonomy: Taxonomy
    categories: Mapping[str, tuple[tuple[int, ...], ...]]
    subcategories: Mapping[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    row_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        keys = set(self.taxonomy.aspect_keys)
        if set(self.categories) != keys:
            raise LabelError(
                f"labels must cover exactly the aspects {sorted(keys)}; got {sorted(self.categories)}"
            )
        unknown = sorted(set(self.subcategories) - keys)
        if unknown:
            raise LabelError(f"subcategory labels for unknown aspect(s) {unknown}; aspects: {sorted(keys)}")
        lengths = {len(v) for v in self.categories.values()} | {len(v) for v in self.subcategories.values()}
        if len(lengths) > 1:
            raise LabelError(f"label columns have different row counts {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if self.row_ids is not None and len(self.row_ids) != n:
            raise LabelError(f"row_ids has {len(self.row_ids)} entries; expected one per row ({n})")
        for a in self.taxonomy.aspects:
            for i, t in enumerate(self.categories[a.key]):
                if not t or (len(t) > 1 and not a.multi_label) or min(t) < 0 or max(t) >= a.n_categories \
                        or len(set(t)) != len(t):
                    raise LabelError(
                        f"row {self._name(i)}, aspect {a.key!r}: bad category indices {t!r}; expected "
                        f"{_expected(a, a.n_categories, 'category')}"
                    )
            for i, t in enumerate(self.subcategories.get(a.key, ())):
                subs = a.subcategories
                if t and (min(t) < 0 or max(t) >= len(subs) or len(set(t)) != len(t)
                          or (len(t) > 1 and not a.multi_label)):
                    raise LabelError(
                        f"row {self._name(i)}, aspect {a.key!r}: bad subcategory indices {t!r}; expected "
                        f"{_expected(a, len(subs), 'subcategory')}"
                    )
                cats = self.categories[a.key][i]
                for s in t:
                    parent = a.category(subs[s].category)
                    if parent.index not in cats:
                        listed = ", ".join(a.categories[c].key for c in cats)
                        raise LabelError(
                            f"row {self._name(i)}, column {a.subcategory_column!r} ({a.key}): subcategory {s} "
                            f"({parent.key}/{subs[s].key}) belongs to category {parent.key!r} (index "
                            f"{parent.index}), which column {a.column!r} does not list for this row "
                            f"(it lists: {listed})"
                        )

    def _name(self, i: int) -> str:
        return f"{i} ({self.row_ids[i]})" if self.row_ids is not None else str(i)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.categories.values()))) if self.categories else 0

    def has_subcategories(self, aspect_key: str) -> bool:
        self.taxonomy.aspect(aspect_key)
        return aspect_key in self.subcategories

    @functools.cached_property
    def _membership(self) -> dict[str, np.ndarray]:
        out = {}
        for a in self.taxonomy.aspects:
            m = np.zeros((self.n_rows, a.n_categories), dtype=bool)
            for i, t in enumerate(self.categories[a.key]):
                m[i, list(t)] = True
            out[a.key] = m
        return out

    @functools.cached_property
    def _sub_membership(self) -> dict[str, np.ndarray]:
        out = {}
        for key, cells in self.subcategories.items():
            m = np.zeros((self.n_rows, len(self.taxonomy.aspect(key).subcategories)), dtype=bool)
            for i, t in enumerate(cells):
                m[i, list(t)] = True
            out[key] = m
        return out

    def membership(self, aspect_key: str) -> np.ndarray:
        """Boolean matrix ``(n_rows, n_categories)``: row ``i`` belongs to category ``c``.

        Multi-label rows have several ``True`` in their row; single-label rows exactly one.
        """
        self.taxonomy.aspect(aspect_key)
        m = self._membership[aspect_key].view()
        m.flags.writeable = False
        return m

    def indices(self, aspect_key: str, category_key: str) -> np.ndarray:
        """Row positions (sorted, int64) of the rows labelled with ``category_key`` in ``aspect_key``."""
        c = self.taxonomy.aspect(aspect_key).category(category_key)
        return np.flatnonzero(self._membership[aspect_key][:, c.index]).astype(np.int64)

    def subcategory_indices(self, aspect_key: str, category_key: str, subcategory_key: str) -> np.ndarray:
        """Row positions of the rows labelled with the given subcategory.

        Raises:
            LabelError: the manifest had no subcategory column for this aspect.
        """
        a = self.taxonomy.aspect(aspect_key)
        s = a.category(category_key).subcategory(subcategory_key)
        if aspect_key not in self.subcategories:
            raise LabelError(
                f"no subcategory labels for aspect {aspect_key!r}: the manifest has no column "
                f"{a.subcategory_column!r}"
            )
        return np.flatnonzero(self._sub_membership[aspect_key][:, s.index]).astype(np.int64)

    def row(self, i: int) -> dict[str, tuple[str, ...]]:
        """Category keys of row ``i`` per aspect, e.g. ``{'sound_type': ('ambient', 'musical'), ...}``."""
        if not 0 <= i < self.n_rows:
            raise IndexError(f"row {i} out of range for {self.n_rows} rows")
        return {
            a.key: tuple(a.categories[c].key for c in self.categories[a.key][i]) for a in self.taxonomy.aspects
        }

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per category (a multi-label row counts in every category it lists)."""
        return {
            a.key: dict(zip(a.category_keys, self._membership[a.key].sum(axis=0).tolist()))
            for a in self.taxonomy.aspects
        }

    def subset(self, rows: Sequence[int] | np.ndarray) -> "Labels":
        """Labels of the given rows, renumbered ``0..len(rows)-1`` in the given order."""
        idx = np.asarray(rows, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise IndexError(f"subset rows must lie in 0..{self.n_rows - 1}; got {idx.min()}..{idx.max()}")
        pick = idx.tolist()
        return Labels(
            taxonomy=self.taxonomy,
            categories={k: tuple(v[i] for i in pick) for k, v in self.categories.items()},
            subcategories={k: tuple(v[i] for i in pick) for k, v in self.subcategories.items()},
            row_ids=None if self.row_ids is None else tuple(self.row_ids[i] for i in pick),
        )


def parse_labels(
    rows: Sequence[Mapping[str, Any]],
    taxonomy: Taxonomy,
    *,
    row_ids: Sequence[str] | None = None,
) -> Labels:
    """Parse every row's label cells (``aspect.column`` and, when present, ``aspect.subcategory_column``).

    ``rows`` are manifest rows as mappings (``csv.DictReader`` rows, ``DataFrame.to_dict("records")``,
    YAML entries).  A column counts as present when any row has it; a row lacking a present
    category column is a missing-label error for that row.

    Raises:
        LabelError: one error listing every missing category column (and the columns found), or
            one error listing the invalid cells (the first 20 and a count), each with its row,
            column, value and the expected form.
    """
    n = len(rows)
    if row_ids is not None and len(row_ids) != n:
        raise LabelError(f"row_ids has {len(row_ids)} entries; expected one per row ({n})")
    ids = None if row_ids is None else tuple(str(r) for r in row_ids)

    def name(i: int) -> str:
        return f"{i} ({ids[i]})" if ids is not None else str(i)

    present: set[str] = set()
    for r in rows:
        present.update(r.keys())
    if n:
        missing = [a.column for a in taxonomy.aspects if a.column not in present]
        if missing:
            raise LabelError(
                f"manifest lacks the label column(s) {missing} required by taxonomy {taxonomy.name!r} "
                f"{taxonomy.version}; expected columns {list(taxonomy.columns)} (one per aspect: "
                f"{', '.join(f'{a.column}={a.key}' for a in taxonomy.aspects)}); found: {sorted(present)}"
            )

    # Row-major so the error list reads in manifest order.
    errors: list[str] = []
    sub_aspects = [a for a in taxonomy.aspects if n and a.subcategory_column in present]
    cat_cols: dict[str, list[tuple[int, ...]]] = {a.key: [] for a in taxonomy.aspects}
    sub_cols: dict[str, list[tuple[int, ...]]] = {a.key: [] for a in sub_aspects}
    for i, r in enumerate(rows):
        for a in taxonomy.aspects:
            try:
                cat_cols[a.key].append(parse_label_cell(r.get(a.column), a, name(i)))
            except LabelError as e:
                errors.append(str(e))
                cat_cols[a.key].append((0,))  # placeholder: an error is raised below anyway
        for a in sub_aspects:
            try:
                sub_cols[a.key].append(parse_subcategory_cell(r.get(a.subcategory_column), a, name(i)))
            except LabelError as e:
                errors.append(str(e))
                sub_cols[a.key].append(())
    cats = {k: tuple(v) for k, v in cat_cols.items()}
    subs = {k: tuple(v) for k, v in sub_cols.items()}
    if errors:
        shown = "\n  ".join(errors[:_MAX_LISTED_ERRORS])
        more = f"\n  ... and {len(errors) - _MAX_LISTED_ERRORS} more" if len(errors) > _MAX_LISTED_ERRORS else ""
        raise LabelError(f"{len(errors)} invalid label cell(s):\n  {shown}{more}")
    # Subcategory/parent consistency is checked by Labels itself (one error, the first offending row).
    return Labels(taxonomy=taxonomy, categories=cats, subcategories=subs, row_ids=ids)
