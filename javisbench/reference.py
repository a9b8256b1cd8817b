"""Reference (real-set) features for set metrics (FVD, KVD, FAD, and any set metric on any encoder).

The original tool compares generated clips with a released ground-truth cache,
``<bench>-vanilla-max4s.pt``: a ``torch.save`` of ``{'video': FloatTensor[N,400] (I3D logits),
'audio': FloatTensor[N,1024] (AudioCLIP embeddings)}``, rows in manifest order.  Row *i* of the
cache is paired with sample *i*.

Files written here are self-describing: features are keyed ``"<encoder>:<feature>"`` (the two
official ones keep the names ``video`` / ``audio``, so the original tool still reads them), and
``'protocol'`` records, per feature, the protocol values it depends on (the encoder's
``feature_protocol``).  A file is refused under a protocol whose value of any recorded field
differs.  This module works on features only: the pipeline extracts them and hands them over.

Untrusted files are parsed, never unpickled: ``.pt`` files go through ``torch.load(...,
weights_only=True)`` (tensors and plain containers only; a pickle that asks for anything else is
refused) onto the CPU, and ``.npz`` files through ``numpy.load(allow_pickle=False)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: the released cache's keys -> (encoder id, feature name), and their dimensions
CACHE_LAYOUT = {"video": ("i3d", "logits"), "audio": ("audioclip", "embedding")}
EXPECTED_DIMS = {"video": 400, "audio": 1024}
_NAME_OF = {v: k for k, v in CACHE_LAYOUT.items()}


class ReferenceError(ValueError):
    pass


def feature_name(pair: tuple[str, str]) -> str:
    """The key a feature is stored under in a reference file."""
    return _NAME_OF.get(pair, f"{pair[0]}:{pair[1]}")


def read_reference(path: str | Path, protocol: Any = None) -> dict[tuple[str, str], np.ndarray]:
    """Reference features, keyed ``(encoder id, feature name)``, from an official ``.pt`` cache or
    a file written by :func:`write_reference` (``.pt`` or ``.npz``).

    With ``protocol``, a file that records the protocol values its features depend on is refused
    when any of them differs from ``protocol``'s (:func:`check_reference_protocol`).
    """
    path = Path(path)
    raw = _read_raw(path)
    if protocol is not None:
        check_reference_protocol(path, protocol, _meta(path, raw))
    out: dict[tuple[str, str], np.ndarray] = {}
    for k, v in raw.items():
        if k == "protocol":
            continue
        if k in CACHE_LAYOUT:
            target = CACHE_LAYOUT[k]
        elif ":" in k:
            enc, _, name = k.partition(":")
            target = (enc, name)
        else:
            continue
        a = np.asarray(v, np.float32)
        want = EXPECTED_DIMS.get(k)
        if a.ndim != 2 or (want is not None and a.shape[1] != want):
            raise ReferenceError(f"{path}: '{k}' has shape {a.shape}, expected [N, {want if want else 'D'}]")
        out[target] = a
    if not out:
        raise ReferenceError(f"{path}: no 'video' or 'audio' entry, nor any 'encoder:feature' one (got keys {sorted(raw)})")
    return out


def _read_raw(path: Path) -> dict[str, Any]:
    """The file's entries: arrays, and the recorded protocol as a string when present."""
    if not path.is_file():
        raise ReferenceError(f"reference file {path} does not exist")
    raw: dict[str, Any]
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except ValueError as e:
            raise ReferenceError(f"{path}: refused ({e}); reference .npz files must hold plain arrays") from None
    else:
        import pickle

        import torch

        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ReferenceError(
                f"{path}: refused to load: the file asks for objects other than tensors and plain containers "
                f"({str(e).splitlines()[0] if str(e) else 'unsafe pickle'}). A JavisBench cache holds only "
                "{'video': tensor, 'audio': tensor}."
            ) from None
        except (RuntimeError, EOFError, OSError) as e:
            raise ReferenceError(f"{path}: not a readable torch.save file ({e})") from None
        if not isinstance(raw, dict):
            raise ReferenceError(f"{path}: expected a dict with 'video'/'audio' tensors, got {type(raw).__name__}")
        raw = {k: (v.detach().cpu().float().numpy() if hasattr(v, "detach") else v) for k, v in raw.items()}
    return raw


def write_reference(features: Mapping[tuple[str, str], np.ndarray], path: str | Path, protocol: Any = None,
                    feature_protocols: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write reference features: ``.pt`` (``torch.save`` of float tensors) or ``.npz``.

    ``features`` are keyed ``(encoder id, feature name)``; I3D logits and AudioCLIP embeddings are
    written as ``video`` / ``audio`` (the official layout), any other as ``"encoder:feature"``.
    With ``protocol``, ``'protocol'`` records as JSON the protocol name and, per feature, the
    values it depends on: ``feature_protocols[encoder]`` (``Encoder.feature_protocol()``), or,
    without it, the legacy set of loader fields.  The original tool reads only video/audio.
    """
    from javisbench.files import atomic_open

    path = Path(path)
    data = {feature_name(t): np.asarray(v, np.float32) for t, v in features.items()}
    meta = None
    if protocol is not None:
        from javisbench.protocol import reference_values

        per_feature = {feature_name(t): dict((feature_protocols or {}).get(t[0]) or reference_values(protocol))
                       for t in features}
        meta = json.dumps({"name": protocol.name, "features": per_feature}, sort_keys=True)
    if path.suffix == ".npz":
        extra = {} if meta is None else {"protocol": np.array(meta)}
        with atomic_open(path, "wb") as f:
            np.savez(f, **data, **extra)
    else:
        import torch

        obj: dict[str, Any] = {k: torch.from_numpy(v) for k, v in data.items()}
        if meta is not None:
            obj["protocol"] = meta
        with atomic_open(path, "wb") as f:
            torch.save(obj, f)
    return path


def recorded_protocol(path: str | Path) -> dict[str, Any] | None:
    """``{'name', 'values'}`` recorded by :func:`write_reference`, or None (e.g. a released cache)."""
    path = Path(path)
    return _meta(path, _read_raw(path))


def _meta(path: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    if "protocol" not in raw:
        return None
    text = str(raw["protocol"])       # a str in .pt files, a 0-d string array in .npz files
    try:
        meta = json.loads(text)
    except ValueError:
        raise ReferenceError(f"{path}: the 'protocol' entry is not the JSON this tool writes: {text[:80]!r}") from None
    if not isinstance(meta, dict) or not (isinstance(meta.get("values"), dict) or isinstance(meta.get("features"), dict)):
        raise ReferenceError(f"{path}: the 'protocol' entry has no 'features' (or legacy 'values') mapping")
    return meta


def check_reference_protocol(path: str | Path, protocol: Any, meta: dict[str, Any] | None) -> None:
    """Refuse a reference whose recorded protocol values (``meta``, as :func:`recorded_protocol`
    returns them) differ from ``protocol``'s in any recorded field; None records nothing."""
    if meta is None:
        return
    run_values = protocol.values()
    groups = meta["features"] if isinstance(meta.get("features"), dict) else {"all features": meta["values"]}
    diff = []
    for feat, values in groups.items():
        for k, v in sorted(values.items()):
            if k in run_values and run_values[k] != v:
                diff.append(f"{k}: file {v!r}, run {run_values[k]!r} ({feat})")
    if diff:
        raise ReferenceError(
            f"{path} was built under protocol {meta.get('name')!r}, whose features differ from this run's "
            f"({protocol.name!r}): " + "; ".join(dict.fromkeys(diff)) + ". Rebuild it with `javisbench reference build "
            f"--protocol {protocol.name}` or run with --protocol {meta.get('name')}"
        )


def features_from_table(rows: Sequence[Any], feats: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                        wanted: Sequence[tuple[str, str]], windowed: bool = False) -> dict[tuple[str, str], np.ndarray]:
    """Reference arrays from extracted features of the real clips.

    ``rows`` are manifest rows (``sample_id``, ``index``); ``feats`` sample id -> encoder -> feature.
    Paired (default): row *i* of the array is manifest row ``index`` *i* (NaN rows where the real
    clip failed, left out of the pairing).  ``windowed``: every window of every clip, clip after
    clip (rows are not paired with samples).
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    for enc_id, name in wanted:
        got = [feats[r.sample_id][enc_id][name] for r in rows if enc_id in feats.get(r.sample_id, {})]
        if not got:
            continue
        if windowed:
            out[(enc_id, name)] = np.concatenate([np.asarray(g, np.float32).reshape(-1, np.asarray(g).shape[-1])
                                                  for g in got])
            continue
        dim = int(np.asarray(got[0]).size)
        # rows are placed at their manifest index (a --where/--subset run scores a subset of rows)
        arr = np.full((max(r.index for r in rows) + 1, dim), np.nan, np.float32)
        for r in rows:
            f = feats.get(r.sample_id, {}).get(enc_id)
            if f is not None:
                arr[r.index] = np.asarray(f[name], np.float32).ravel()
        out[(enc_id, name)] = arr
    return out
