"""Lookup errors that help: unknown names get the closest matches and the full list."""
from __future__ import annotations

import difflib
from typing import Iterable


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> KeyError:
    """``KeyError("Unknown metric 'clipscore'. Did you mean: clip_score? Available: ...")``."""
    options = list(choices)
    close = difflib.get_close_matches(name, options, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return KeyError(f"Unknown {kind} {name!r}.{hint} Available: {', '.join(options)}")
