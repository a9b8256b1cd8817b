"""Taxonomy data model: frozen, validated ``Taxonomy`` -> ``Aspect`` -> ``Category`` -> ``Subcategory``.

A taxonomy is data (a YAML file, ``taxonomy/javisbench.yaml`` for the official bench) read into
these dataclasses.  Order is meaning: aspect *a* is read from its ``column`` (``cat{a}_ind`` for
JavisBench), the position of a category inside its aspect is the integer stored in a label cell,
and subcategories are numbered *flat across the aspect* (the first category's subcategories
first), which is the integer stored in the optional ``subcategory_column``.

Example:
    >>> tax = load_taxonomy("javisbench")
    >>> [a.key for a in tax.aspects]
    ['event_scenario', 'visual_style', 'sound_type', 'temporal', 'spatial']
    >>> tax.aspect("temporal").column, tax.n_categories, tax.n_subcategories
    ('cat3_ind', 19, 68)
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "Aspect",
    "Category",
    "Subcategory",
    "Taxonomy",
    "TaxonomyError",
    "builtin_taxonomies",
    "load_taxonomy",
    "slugify",
]

# Keys end up in results JSON, CLI filters and table headers: lower-case words joined by "_".
_KEY_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
# Manifest columns with a fixed meaning elsewhere; a label column must not reuse them.
RESERVED_COLUMNS = frozenset(
    {"text", "audio_text", "path", "audio_path", "pred_video_path", "pred_audio_path", "id"}
)


class TaxonomyError(ValueError):
    """A taxonomy definition is malformed; the message names the file, the entry and the fix."""


def slugify(title: str) -> str:
    """Derive a key from a title: lower case, ``&`` -> ``and``, other non-alphanumerics -> ``_``.

    Example:
        >>> slugify("Orchestral & Choral"), slugify("Narration/Voice-Over"), slugify("sketch style")
        ('orchestral_and_choral', 'narration_voice_over', 'sketch_style')
    """
    s = title.lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


@dataclass(frozen=True)
class Subcategory:
    """A subcategory; ``index`` is its flat position within the aspect (the label-cell value)."""

    key: str
    title: str
    index: int          # flat index across the aspect's categories
    local_index: int    # position inside its category
    category: str       # parent category key


@dataclass(frozen=True)
class Category:
    """A category; ``index`` is its position within the aspect (the ``cat{a}_ind`` value)."""

    key: str
    title: str
    description: str
    index: int
    subcategories: tuple[Subcategory, ...] = ()

    def subcategory(self, key: str) -> Subcategory:
        for s in self.subcategories:
            if s.key == key:
                return s
        raise KeyError(
            f"category {self.key!r} has no subcategory {key!r}; "
            f"choices: {', '.join(s.key for s in self.subcategories) or '(none)'}"
        )


@dataclass(frozen=True)
class Aspect:
    """One labelling dimension: its categories, its label column and whether it is multi-label."""

    key: str
    title: str
    column: str
    multi_label: bool
    categories: tuple[Category, ...]
    index: int
    description: str = ""
    subcategory_column: str = ""

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def category_keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.categories)

    @property
    def subcategories(self) -> tuple[Subcategory, ...]:
        """All subcategories in flat-index order (``subcategories[i].index == i``)."""
        return tuple(s for c in self.categories for s in c.subcategories)

    def category(self, key: str) -> Category:
        for c in self.categories:
            if c.key == key:
                return c
        raise KeyError(
            f"aspect {self.key!r} has no category {key!r}; choices: {', '.join(self.category_keys)}"
        )


@dataclass(frozen=True)
class Taxonomy:
    """A benchmark's taxonomy: aspects in label-column order."""

    name: str
    version: str
    aspects: tuple[Aspect, ...]
    description: str = ""
    source: str = field(default="", compare=False)   # file it was read from, for messages

    @property
    def aspect_keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.aspects)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(a.column for a in self.aspects)

    @property
    def n_categories(self) -> int:
        return sum(a.n_categories for a in self.aspects)

    @property
    def n_subcategories(self) -> int:
        return sum(len(a.subcategories) for a in self.aspects)

    def aspect(self, key: str) -> Aspect:
        for a in self.aspects:
            if a.key == key:
                return a
        raise KeyError(
            f"taxonomy {self.name!r} has no aspect {key!r}; choices: {', '.join(self.aspect_keys)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the YAML layout, keys explicit); ``Taxonomy.from_dict`` reads it back."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "aspects": [
                {
                    "key": a.key,
                    "title": a.title,
                    "column": a.column,
                    "subcategory_column": a.subcategory_column,
                    "multi_label": a.multi_label,
                    "description": a.description,
                    "categories": [
                        {
                            "key": c.key,
                            "title": c.title,
                            "description": c.description,
                            "subcategories": [{"key": s.key, "title": s.title} for s in c.subcategories],
                        }
                        for c in a.categories
                    ],
                }
                for a in self.aspects
            ],
        }

    @property
    def fingerprint(self) -> str:
        """Short sha256 of the plain-data form: changes whenever any key, title or order changes."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "Taxonomy":
        """Validate a plain-data taxonomy (as read from YAML) and build the frozen objects.

        Raises:
            TaxonomyError: unknown or missing fields, bad or duplicate keys, an aspect with no
                categories, a missing/duplicate/reserved label column.
        """
        return _build(data, source)


# ---------------------------------------------------------------------------------------------
# validation


_TOP_FIELDS = {"name", "version", "description", "aspects"}
_ASPECT_FIELDS = {"key", "title", "column", "subcategory_column", "multi_label", "description", "categories"}
_CATEGORY_FIELDS = {"key", "title", "description", "subcategories"}


def _fail(source: str, where: str, msg: str) -> TaxonomyError:
    return TaxonomyError(f"{source}: {where}: {msg}")


def _check_fields(obj: Any, allowed: set[str], required: set[str], source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise _fail(source, where, f"expected a mapping, got {type(obj).__name__} ({obj!r})")
    unknown = sorted(set(map(str, obj)) - allowed)
    if unknown:
        raise _fail(source, where, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise _fail(source, where, f"missing required field(s) {missing}")
    return obj


def _str(obj: Mapping[str, Any], name: str, source: str, where: str, default: str | None = None) -> str:
    v = obj.get(name, default)
    if not isinstance(v, str) or (default is None and not v.strip()):
        hint = " (quote it in YAML, e.g. version: \"1.0\")" if name == "version" else ""
        raise _fail(source, where, f"{name!r} must be a non-empty string, got {v!r}{hint}")
    return v.strip()


def _key(obj: Mapping[str, Any], source: str, where: str) -> str:
    k = obj.get("key")
    if not isinstance(k, str) or not _KEY_RE.match(k):
        raise _fail(
            source, where,
            f"key must be lower-case words joined by '_' (e.g. 'sound_type'), got {k!r}",
        )
    return k


def _dupes(items: list[str]) -> list[str]:
    return sorted(k for k, n in Counter(items).items() if n > 1)


def _build(data: Any, source: str) -> Taxonomy:
    top = _check_fields(data, _TOP_FIELDS, {"name", "version", "aspects"}, source, "top level")
    name = _str(top, "name", source, "top level")
    version = _str(top, "version", source, "top level")
    aspects_raw = top["aspects"]
    if not isinstance(aspects_raw, list) or not aspects_raw:
        raise _fail(source, "aspects", f"expected a non-empty list of aspects, got {aspects_raw!r}")

    aspects: list[Aspect] = []
    for ai, araw in enumerate(aspects_raw):
        where = f"aspects[{ai}]"
        a = _check_fields(araw, _ASPECT_FIELDS, {"key", "title", "column", "categories"}, source, where)
        akey = _key(a, source, where)
        where = f"aspects[{ai}] ({akey})"
        column = a.get("column")
        if not isinstance(column, str) or not column.strip() or column != column.strip():
            raise _fail(source, where, f"'column' must be a non-empty column name without spaces around it, got {column!r}")
        # "sub" + "cat0_ind" = "subcat0_ind": the JavisBench convention, used when not given.
        subcol = a.get("subcategory_column", "sub" + column)
        if not isinstance(subcol, str) or not subcol.strip():
            raise _fail(source, where, f"'subcategory_column' must be a non-empty string, got {subcol!r}")
        multi = a.get("multi_label", False)
        if not isinstance(multi, bool):
            raise _fail(source, where, f"'multi_label' must be true or false, got {multi!r}")
        cats_raw = a["categories"]
        if not isinstance(cats_raw, list) or not cats_raw:
            raise _fail(source, where, f"an aspect needs at least one category, got {cats_raw!r}")

        cats: list[Category] = []
        flat = 0
        for ci, craw in enumerate(cats_raw):
            cwhere = f"{where}.categories[{ci}]"
            c = _check_fields(craw, _CATEGORY_FIELDS, {"key", "title"}, source, cwhere)
            ckey = _key(c, source, cwhere)
            cwhere = f"{where}.categories[{ci}] ({ckey})"
            subs_raw = c.get("subcategories", []) or []
            if not isinstance(subs_raw, list):
                raise _fail(source, cwhere, f"'subcategories' must be a list, got {subs_raw!r}")
            subs: list[Subcategory] = []
            for si, sraw in enumerate(subs_raw):
                swhere = f"{cwhere}.subcategories[{si}]"
                # A bare string is a title (key derived with slugify); a mapping gives both.
                if isinstance(sraw, str):
                    stitle, skey = sraw.strip(), slugify(sraw)
                else:
                    s = _check_fields(sraw, {"key", "title"}, {"title"}, source, swhere)
                    stitle = _str(s, "title", source, swhere)
                    skey = s.get("key", slugify(stitle))
                if not stitle or not isinstance(skey, str) or not _KEY_RE.match(skey):
                    raise _fail(source, swhere, f"bad subcategory {sraw!r}: needs a title and a key of lower-case words joined by '_'")
                subs.append(Subcategory(key=skey, title=stitle, index=flat, local_index=si, category=ckey))
                flat += 1
            d = _dupes([s.key for s in subs])
            if d:
                raise _fail(source, cwhere, f"duplicate subcategory key(s) {d}; give them distinct titles or explicit keys")
            cats.append(
                Category(
                    key=ckey,
                    title=_str(c, "title", source, cwhere),
                    description=_str(c, "description", source, cwhere, default=""),
                    index=ci,
                    subcategories=tuple(subs),
                )
            )
        d = _dupes([c.key for c in cats])
        if d:
            raise _fail(source, where, f"duplicate category key(s) {d}")
        d = _dupes([c.title.lower() for c in cats])
        if d:
            raise _fail(source, where, f"duplicate category title(s) {d} (titles are matched case-insensitively)")
        aspects.append(
            Aspect(
                key=akey,
                title=_str(a, "title", source, where),
                column=column,
                multi_label=multi,
                categories=tuple(cats),
                index=ai,
                description=_str(a, "description", source, where, default=""),
                subcategory_column=subcol.strip(),
            )
        )

    d = _dupes([a.key for a in aspects])
    if d:
        raise _fail(source, "aspects", f"duplicate aspect key(s) {d}")
    d = _dupes([a.title.lower() for a in aspects])
    if d:
        raise _fail(source, "aspects", f"duplicate aspect title(s) {d}")
    cols = [a.column for a in aspects] + [a.subcategory_column for a in aspects]
    d = _dupes(cols)
    if d:
        raise _fail(source, "aspects", f"label column(s) {d} used twice; every aspect needs its own "
                    f"'column' and 'subcategory_column'")
    bad = sorted(set(cols) & RESERVED_COLUMNS)
    if bad:
        raise _fail(source, "aspects", f"label column(s) {bad} clash with manifest columns "
                    f"{sorted(RESERVED_COLUMNS)}")
    return Taxonomy(
        name=name,
        version=version,
        aspects=tuple(aspects),
        description=_str(top, "description", source, "top level", default=""),
        source=source,
    )


# ---------------------------------------------------------------------------------------------
# loading


def builtin_taxonomies() -> tuple[str, ...]:
    """Names of the taxonomies shipped inside this package (``<name>.yaml`` next to this file)."""
    files = resources.files(__package__ or "taxonomy")
    return tuple(sorted(p.name[: -len(".yaml")] for p in files.iterdir() if p.name.endswith(".yaml")))


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> Taxonomy:
    text = (resources.files(__package__ or "taxonomy") / f"{name}.yaml").read_text(encoding="utf-8")
    return _parse_text(text, f"{name}.yaml (built in)")


def _parse_text(text: str, source: str) -> Taxonomy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{source}: not valid YAML: {e}") from None
    return _build(data, source)


def load_taxonomy(path_or_name: str | os.PathLike[str] = "javisbench") -> Taxonomy:
    """Load a taxonomy: a built-in name (``"javisbench"``) or the path of a user YAML file.

    A value with a path separator or a ``.yaml``/``.yml`` suffix, or one naming an existing
    file, is read as a file; anything else must be a built-in name.

    Raises:
        TaxonomyError: the file is malformed (see ``Taxonomy.from_dict``).
        FileNotFoundError: the file does not exist.
        KeyError: unknown built-in name (the message lists the available ones).
    """
    s = os.fspath(path_or_name)
    p = Path(s).expanduser()
    looks_like_path = (
        isinstance(path_or_name, os.PathLike) or os.sep in s or "/" in s or p.suffix in (".yaml", ".yml")
    )
    if looks_like_path or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(f"taxonomy file not found: {p}")
        return _parse_text(p.read_text(encoding="utf-8"), str(p))
    if s not in builtin_taxonomies():
        raise KeyError(
            f"unknown taxonomy {s!r}: not a built-in name and not a file; built in: "
            f"{', '.join(builtin_taxonomies())} (or pass the path of a .yaml file)"
        )
    return _load_builtin(s)
