"""Plain-text tables for the terminal: one formatter for every command that prints one."""
from __future__ import annotations

from typing import Sequence


def grid(head: Sequence[str], rows: Sequence[Sequence[object]], rule: bool = True, last_free: bool = False) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header.

    ``last_free``: the last column (a description, say) is not padded nor counted in the widths.

    Example:
        >>> print(grid(["key", "value"], [["fvd", 1.5], ["av_align", 0.2]]))
        key       value
        --------  -----
        fvd       1.5
        av_align  0.2
    """
    table = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    n = len(table[0]) - (1 if last_free else 0)
    widths = [max(len(r[i]) for r in table) for i in range(n)]

    def line(r: list[str]) -> str:
        cells = "  ".join(c.ljust(w) for c, w in zip(r[:n], widths))
        return (cells + "  " + r[-1] if last_free else cells).rstrip()

    out = [line(table[0])]
    if rule:
        out.append(line(["-" * w for w in widths] + ([""] if last_free else [])))
    out.extend(line(r) for r in table[1:])
    return "\n".join(out)
