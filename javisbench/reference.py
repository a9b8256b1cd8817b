"""Reference (real-set) features for FVD, KVD and FAD.

The original tool compares generated clips with a released ground-truth cache,
``<bench>-vanilla-max4s.pt``: a ``torch.save`` of ``{'video': FloatTensor[N,400] (I3D logits),
'audio': FloatTensor[N,1024] (AudioCLIP embeddings)}``, rows in manifest order.  Row *i* of the
cache is paired with sample *i*; the first ``min(N_fake, N_real)`` rows are used.

Untrusted files are parsed, never unpickled: ``.pt`` files go through ``torch.load(...,
weights_only=True)`` (tensors and plain containers only; a pickle that asks for anything else is
refused) onto the CPU, and ``.npz`` files through ``numpy.load(allow_pickle=False)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.evaluate import Plan

#: cache key -> (encoder id, feature name)
CACHE_LAYOUT = {"video": ("i3d", "logits"), "audio": ("audioclip", "embedding")}
EXPECTED_DIMS = {"video": 400, "audio": 1024}


class ReferenceError(ValueError):
    pass


def read_reference(path: str | Path, protocol: Any = None) -> dict[tuple[str, str], np.ndarray]:
    """Reference features from an official ``.pt`` cache or an ``.npz`` with keys video/audio.

    With ``protocol``, a file that records the protocol it was built under (``write_reference``)
    is refused when its feature-relevant values differ (:func:`check_reference_protocol`).
    """
    path = Path(path)
    raw = _read_raw(path)
    if protocol is not None:
        check_reference_protocol(path, protocol, _meta(path, raw))
    out: dict[tuple[str, str], np.ndarray] = {}
    for k, target in CACHE_LAYOUT.items():
        if k not in raw:
            continue
        a = np.asarray(raw[k], np.float32)
        if a.ndim != 2 or a.shape[1] != EXPECTED_DIMS[k]:
            raise ReferenceError(f"{path}: '{k}' has shape {a.shape}, expected [N, {EXPECTED_DIMS[k]}]")
        out[target] = a
    if not out:
        raise ReferenceError(f"{path}: no 'video' or 'audio' entry (got keys {sorted(raw)})")
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


def write_reference(features: dict[tuple[str, str], np.ndarray], path: str | Path, protocol: Any = None) -> Path:
    """Write the official layout: ``.pt`` (torch.save of float tensors) or ``.npz``.

    With ``protocol``, the values the features depend on (:func:`javisbench.protocol.reference_values`)
    are recorded as a JSON string under ``'protocol'``: the original tool reads only ``'video'`` and
    ``'audio'``, and :func:`check_reference_protocol` refuses the file under another loader.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: np.asarray(features[t], np.float32) for k, t in CACHE_LAYOUT.items() if t in features}
    meta = None
    if protocol is not None:
        from javisbench.protocol import reference_values

        meta = json.dumps({"name": protocol.name, "values": reference_values(protocol)}, sort_keys=True)
    tmp = path.with_name(path.name + ".part")
    if path.suffix == ".npz":
        extra = {} if meta is None else {"protocol": np.array(meta)}
        with open(tmp, "wb") as f:
            np.savez(f, **data, **extra)
    else:
        import torch

        obj: dict[str, Any] = {k: torch.from_numpy(v) for k, v in data.items()}
        if meta is not None:
            obj["protocol"] = meta
        torch.save(obj, tmp)
    tmp.replace(path)
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
    if not isinstance(meta, dict) or not isinstance(meta.get("values"), dict):
        raise ReferenceError(f"{path}: the 'protocol' entry has no 'values' mapping")
    return meta


def check_reference_protocol(path: str | Path, protocol: Any, meta: dict[str, Any] | None) -> None:
    """Refuse a reference whose recorded feature-relevant protocol values (``meta``, as
    :func:`recorded_protocol` returns them) differ from ``protocol``'s; None records nothing."""
    from javisbench.protocol import reference_values

    if meta is None:
        return
    want = reference_values(protocol)
    got = meta["values"]
    diff = [f"{k}: file {got.get(k)!r}, run {v!r}" for k, v in want.items() if k in got and got[k] != v]
    if diff:
        raise ReferenceError(
            f"{path} was built under protocol {meta.get('name')!r}, whose features differ from this run's "
            f"({protocol.name!r}): " + "; ".join(diff) + ". Rebuild it with `javisbench reference build "
            f"--protocol {protocol.name}` or run with --protocol {meta.get('name')}"
        )


def compute_reference(plan: "Plan") -> dict[tuple[str, str], np.ndarray]:
    """Reference features from real clips (``--reference-dir``), through the same pipeline.

    The real folder holds ``sample_{i:04d}.mp4`` (+ ``.wav``) for row *i*, or the manifest's
    ``path`` / ``audio_path`` columns name the files relative to it.  Rows whose real clip fails
    are NaN rows here and are left out of the pairing (recorded in the plan's warnings).
    """
    from dataclasses import replace

    from javisbench.evaluate import extract, plan_run

    cfg = plan.config
    assert cfg.reference_dir is not None
    real_dir = Path(cfg.reference_dir)
    samples_dir: Path | None = real_dir
    if not (real_dir / "sample_0000.mp4").exists() and "path" in plan.manifest.columns:
        samples_dir = None
    keys = [m.key for m in plan.metrics if m.kind == "set"]
    sub_cfg = replace(cfg, samples_dir=samples_dir, metrics=keys, out=None, export_official=None, reference=None,
                      reference_dir=None)
    if samples_dir is None:
        sub_cfg = replace(sub_cfg, bench=_real_paths_manifest(plan, real_dir))
    sub = plan_run(sub_cfg)
    # the same encoders (same protocol, weights and device): reuse them, do not load a model twice
    sub.encoders = {k: plan.encoders[k] if k in plan.encoders and plan.encoders[k].fingerprint() == v.fingerprint() else v
                    for k, v in sub.encoders.items()}
    feats = extract(sub)
    out: dict[tuple[str, str], np.ndarray] = {}
    for enc_id, name in CACHE_LAYOUT.values():
        if enc_id not in sub.encoders:
            continue
        got = [feats[r.sample_id][enc_id][name] for r in sub.manifest.rows if enc_id in feats.get(r.sample_id, {})]
        if not got:
            continue
        if sub.protocol.windowed:
            # every window of every clip, clip after clip: rows are not paired with samples
            out[(enc_id, name)] = np.concatenate([np.asarray(g, np.float32).reshape(-1, np.asarray(g).shape[-1])
                                                  for g in got])
            continue
        dim = int(np.asarray(got[0]).size)
        # rows are placed at their manifest index (a --where/--subset run scores a subset of rows)
        arr = np.full((max(r.index for r in sub.manifest.rows) + 1, dim), np.nan, np.float32)
        for r in sub.manifest.rows:
            f = feats.get(r.sample_id, {}).get(enc_id)
            if f is not None:
                arr[r.index] = np.asarray(f[name], np.float32).ravel()
        out[(enc_id, name)] = arr
    for sid, stages in sub.failures.items():
        for stage, msg in stages.items():
            plan.warn(sid, f"reference clip failed at {stage}: {msg}")
    return out


def _real_paths_manifest(plan: "Plan", real_dir: Path) -> Path:
    """A manifest whose pred_video_path/pred_audio_path point at the real clips of each row."""
    import csv
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="javisbench-real-", suffix=".csv")
    with open(fd, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "audio_text", "pred_video_path", "pred_audio_path"])
        for r in plan.manifest.rows:
            v = real_dir / r.raw["path"].strip()
            a_raw = r.raw.get("audio_path", "").strip()
            a = real_dir / a_raw if a_raw and a_raw != r.raw["path"].strip() else ""
            w.writerow([r.text, r.audio_text, str(v), str(a)])
    return Path(tmp)
