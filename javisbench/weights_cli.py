"""``javisbench weights list|verify|download|path``."""
from __future__ import annotations

import sys
from pathlib import Path

from javisbench.weights import WeightFile, check, resolve_weights_dir


def catalog(encoders: list[str] | None = None) -> list[tuple[str, WeightFile]]:
    """(encoder id, file) for every registered encoder that needs weights."""
    from javisbench.encoders import ENCODERS, encoder_class

    out = []
    for name in encoders or list(ENCODERS):
        for wf in encoder_class(name).weight_files:
            out.append((name, wf))
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_weights(action: str, encoders: list[str], weights_dir: Path | None, progress: str = "auto") -> int:
    wdir = resolve_weights_dir(weights_dir)
    if action == "path":
        print(wdir)
        return 0
    rows = catalog(encoders or None)
    status = 0
    if action in ("list", "verify"):
        print(f"weights dir: {wdir}")
        for enc, wf in rows:
            st = check(enc, wf, wdir, hash_it=(action == "verify"))
            line = f"{enc:<14}{wf.name:<32}{st.status:<11}{_size(st.size):>10}  {wf.license}"
            if action == "verify" and st.sha256:
                line += f"\n{'':<14}sha256 {st.sha256}"
            if st.status != "present":
                line += f"\n{'':<14}source: {wf.url}" + (f" ({st.detail})" if st.detail else "")
                status = 1 if action == "verify" else status
            print(line)
        return status
    # download: Hub files and folders through huggingface_hub, the rest over HTTPS with resume
    from javisbench.download import fetch
    from javisbench.weights import sha256_of

    for enc, wf in rows:
        st = check(enc, wf, wdir)
        if st.status == "present":
            print(f"{enc}: {wf.name} already present")
            continue
        try:
            p = fetch(wf, wdir, progress=progress)
            digest = sha256_of(p)
            print(f"{enc}: downloaded {p}\n{'':<{len(enc) + 2}}sha256 {digest}"
                  + (" (the official file's)" if wf.sha256 else " (recorded)"))
        except Exception as e:  # noqa: BLE001 - report every file, keep going
            print(f"{enc}: could not download {wf.name} from {wf.url}: {e}", file=sys.stderr)
            status = 1
    return status
