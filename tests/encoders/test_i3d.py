"""I3D encoder: official checkpoint format, TF-SAME padding, parity with the golden fixture.

The golden checkpoint (fill-rule weights, ``tests/golden/i3d``) is written to disk in the
official file format once per module and loaded through ``I3DEncoder.load`` exactly as a user's
``i3d_pretrained_400.pt`` would be.  Tolerances are those of ``tests/golden/i3d/README.md``:
logits abs 1e-3 (features ~0.5, spread across clips ~0.1, re-run noise 9e-7), FVD rel 1e-3,
KVD abs 1e-4.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from javisbench.encoders.i3d import (  # noqa: E402
    I3DEncoder,
    build_i3d,
    fvd_input,
    same_padding,
)
from javisbench.encoders.base import SampleError  # noqa: E402
from javisbench.golden import fixture_keys, torch_state_dict  # noqa: E402
from javisbench.protocol import OFFICIAL  # noqa: E402
from javisbench.weights import BadWeightsError, MissingWeightsError  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE = GOLDEN / "i3d"
INPUTS = GOLDEN / "inputs"
LOGITS_ABS = 1e-3


@pytest.fixture(scope="module")
def i3d_state() -> dict:
    return torch_state_dict(FIXTURE)


@pytest.fixture(scope="module")
def i3d_weights_dir(tmp_path_factory: pytest.TempPathFactory, i3d_state: dict) -> Path:
    d = tmp_path_factory.mktemp("i3d_weights")
    torch.save(i3d_state, d / "i3d_pretrained_400.pt")
    return d


@pytest.fixture(scope="module")
def i3d_encoder(i3d_weights_dir: Path) -> I3DEncoder:
    enc = I3DEncoder(OFFICIAL, device="cpu", batch_size=4)
    enc.load(i3d_weights_dir)
    return enc


@pytest.fixture(scope="module")
def i3d_expected() -> tuple[dict, dict]:
    z = np.load(FIXTURE / "expected.npz")
    return {k: z[k] for k in z.files}, json.loads((FIXTURE / "expected.json").read_text())


def recorded_clip0_u8(npz: dict) -> np.ndarray:
    """The uint8 (T, 3, H, W) video behind the recorded float16 I3D input of clip 0.

    The input is ``(u8 / 255 - 0.5) * 2`` stored as float16 (error < 2.5e-4, far below the
    1/127.5 step), so rounding recovers the uint8 exactly.
    """
    x = npz["i3d_input_clip0"].astype(np.float64)                # (3, T, H, W)
    u8 = np.round((x + 1.0) * 127.5)
    assert np.abs(u8 - (x + 1.0) * 127.5).max() < 0.1         # really on the uint8 grid
    return np.ascontiguousarray(u8.astype(np.uint8).transpose(1, 0, 2, 3))


# --------------------------------------------------------------------------------------------
# architecture and checkpoint format
# --------------------------------------------------------------------------------------------
def test_same_padding_is_tf_same() -> None:
    # TF: out = ceil(n / s); total pad = max((out - 1) * s + k - n, 0), the extra one at the end
    for n in range(1, 40):
        for k in range(1, 8):
            for s in range(1, 4):
                front, back = same_padding(n, k, s)
                out = math.ceil(n / s)
                total = max((out - 1) * s + k - n, 0)
                assert (front, back) == (total // 2, total - total // 2), (n, k, s)
                assert (n + front + back - k) // s + 1 == out


def test_state_dict_is_the_official_layout() -> None:
    model = build_i3d()
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    want = [(k, shape) for k, shape, _ in fixture_keys(FIXTURE)]
    assert got == want   # same keys, same shapes, same order as the official file


def test_missing_weights_names_the_file(tmp_path: Path) -> None:
    enc = I3DEncoder(OFFICIAL)
    with pytest.raises(MissingWeightsError, match="i3d_pretrained_400.pt"):
        enc.load(tmp_path)


def test_bad_checkpoints_list_the_keys(tmp_path: Path, i3d_state: dict) -> None:
    broken = dict(i3d_state)
    del broken["Mixed_4c.b1b.conv3d.weight"]
    broken["Mixed_9z.extra"] = torch.zeros(3)
    broken["logits.conv3d.bias"] = torch.zeros(401)
    torch.save(broken, tmp_path / "i3d_pretrained_400.pt")
    with pytest.raises(BadWeightsError) as err:
        I3DEncoder(OFFICIAL).load(tmp_path)
    msg = str(err.value)
    for part in ("1 missing: Mixed_4c.b1b.conv3d.weight", "1 unexpected: Mixed_9z.extra",
                 "logits.conv3d.bias: checkpoint (401,) vs model (400,)"):
        assert part in msg


def test_state_dict_wrapper_loads(tmp_path: Path, i3d_state: dict, i3d_encoder: I3DEncoder) -> None:
    torch.save({"state_dict": i3d_state, "epoch": 3}, tmp_path / "i3d_pretrained_400.pt")
    enc = I3DEncoder(OFFICIAL)
    enc.load(tmp_path)
    assert enc.model is not None
    for (k, a), b in zip(enc.model.state_dict().items(), i3d_encoder.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(enc.weights_sha256["i3d_pretrained_400.pt"]) == 64


# --------------------------------------------------------------------------------------------
# parity on the recorded input (no decoder needed)
# --------------------------------------------------------------------------------------------
def test_recorded_input_is_reproduced(i3d_expected: tuple[dict, dict]) -> None:
    npz, js = i3d_expected
    u8 = recorded_clip0_u8(npz)
    clip0 = js["per_clip"][0]
    # the uint8 "dataset video" of the official run, at its recorded positions: exact
    ds = clip0["dataset_video_uint8"]
    assert list(u8.shape) == ds["shape"]
    assert u8.reshape(-1)[ds["sample_flat_index"]].tolist() == ds["sample_values"]
    assert abs(float(u8.mean()) - ds["mean"]) < 1e-6
    # the float input: exact at the recorded crop and the pad, float16-close everywhere
    x = fvd_input(torch.from_numpy(u8)[None])[0].numpy()             # (3, T, 224, 224)
    assert x.shape == tuple(clip0["i3d_input"]["shape"]) and x.dtype == np.float32
    assert x[0, 0, 100:104, 100:104].tolist() == clip0["i3d_input_crop_c0_t0_y100_x100_4x4"]
    assert float(x[0, 0, 0, 0]) == clip0["i3d_input_pad_rows_first_pixel"]
    assert x.reshape(-1)[clip0["i3d_input"]["sample_flat_index"]].tolist() == clip0["i3d_input"]["sample_values"]
    assert np.abs(x - npz["i3d_input_clip0"].astype(np.float32)).max() < 2.5e-4


@pytest.fixture(scope="module")
def i3d_clip0_logits(i3d_encoder: I3DEncoder, i3d_expected: tuple[dict, dict]) -> np.ndarray:
    (feats,) = i3d_encoder.encode([{"video": recorded_clip0_u8(i3d_expected[0])}])
    return feats["logits"]


def test_golden_logits_from_recorded_input(i3d_clip0_logits: np.ndarray, i3d_expected: tuple[dict, dict]) -> None:
    npz, _ = i3d_expected
    logits = i3d_clip0_logits
    assert logits.shape == (400,) and logits.dtype == np.float32
    diff = np.abs(logits - npz["features"][0]).max()
    assert diff < LOGITS_ABS, f"clip_00 max abs diff {diff:.3g}"
    # the logits depend on the input: another clip's features are far from these
    assert np.abs(logits - npz["features"][1]).max() > 100 * LOGITS_ABS


def test_batch_rows_are_independent(i3d_encoder: I3DEncoder, i3d_clip0_logits: np.ndarray,
                                    i3d_expected: tuple[dict, dict]) -> None:
    u8 = recorded_clip0_u8(i3d_expected[0])
    other = np.ascontiguousarray(u8[::-1])              # time-reversed clip
    both = i3d_encoder.encode([{"video": u8}, {"video": other}])
    assert np.abs(both[0]["logits"] - i3d_clip0_logits).max() < 1e-5   # same row, batched or alone
    assert np.abs(both[1]["logits"] - both[0]["logits"]).max() > 1e-2


def test_input_checks(i3d_encoder: I3DEncoder) -> None:
    with pytest.raises(ValueError, match="fvd_frames=8"):
        I3DEncoder(OFFICIAL.replace(fvd_frames=8))
    for frames in (np.zeros((0, 240, 320, 3), np.uint8), np.zeros((240, 320, 3), np.uint8),
                   np.zeros((4, 240, 320, 4), np.uint8)):
        bad = SimpleNamespace(sample_id="sample_0003", frames=frames, fps=24.0)
        with pytest.raises(SampleError, match="sample_0003"):
            i3d_encoder.prepare(bad, "", "")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_encoder.encode([{"video": np.zeros((8, 3, 224, 224), np.uint8)}])
    with pytest.raises(ValueError, match="item 1"):
        i3d_encoder.encode([{"video": np.zeros((16, 3, 224, 224), np.uint8)},
                            {"video": np.zeros((16, 3, 224, 224), np.float32)}])


# --------------------------------------------------------------------------------------------
# end to end from the mp4 files (needs javisbench.decode and javisbench.views.fvd_video)
# --------------------------------------------------------------------------------------------
def _pipeline_or_skip():  # type: ignore[no-untyped-def]
    try:
        from javisbench import decode, views
    except ImportError as exc:  # pragma: no cover - until the decoder lands
        pytest.skip(f"end-to-end I3D needs javisbench.decode/views: {exc}")
    if not hasattr(views, "fvd_video") or not hasattr(decode, "decode_sample"):
        pytest.skip("end-to-end I3D needs decode.decode_sample and views.fvd_video")
    return decode


def _e2e_features(encoder: I3DEncoder, names: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    decode = _pipeline_or_skip()
    prepared = []
    for name in names:
        clip = decode.decode_sample(INPUTS / f"{name}.mp4", INPUTS / f"{name}.wav", sample_id=name)
        prepared.append(encoder.prepare(clip, "", ""))
    feats = encoder.encode(prepared)
    return np.stack([f["logits"] for f in feats]), [p["video"] for p in prepared]


@pytest.fixture(scope="module")
def i3d_e2e(i3d_encoder: I3DEncoder, i3d_expected: tuple[dict, dict]) -> tuple[np.ndarray, list[np.ndarray]]:
    npz, _ = i3d_expected
    return _e2e_features(i3d_encoder, [str(n) for n in npz["names"]])


def test_end_to_end_views(i3d_e2e: tuple, i3d_expected: tuple[dict, dict]) -> None:
    _, videos = i3d_e2e
    _, js = i3d_expected
    for video, clip in zip(videos, js["per_clip"]):
        ds = clip["dataset_video_uint8"]
        assert list(video.shape) == ds["shape"] and video.dtype == np.uint8, clip["name"]
        # README: mean within 0.05 uint8 units, at most 1 LSB per pixel
        assert abs(float(video.mean()) - ds["mean"]) < 0.05, clip["name"]
        got = video.reshape(-1)[ds["sample_flat_index"]].astype(int)
        assert np.abs(got - np.array(ds["sample_values"])).max() <= 1, clip["name"]


def test_end_to_end_logits(i3d_e2e: tuple, i3d_expected: tuple[dict, dict]) -> None:
    feats, _ = i3d_e2e
    npz, _ = i3d_expected
    diffs = np.abs(feats - npz["features"]).max(axis=1)
    assert diffs.max() < LOGITS_ABS, dict(zip(npz["names"].tolist(), diffs.round(8).tolist()))


def _set_metrics_or_skip():  # type: ignore[no-untyped-def]
    pytest.importorskip("metrics.frechet")
    pytest.importorskip("metrics.kernel")
    from javisbench.suite import get_metric

    return get_metric


def _check_fvd_kvd(feats: np.ndarray, names: list[str], fake: list[str], real: list[str],
                   fvd: float, kvd: float) -> None:
    get_metric = _set_metrics_or_skip()
    idx = {n: i for i, n in enumerate(names)}
    n = min(len(fake), len(real))   # the official pairs the first n rows of each set
    x = feats[[idx[k] for k in fake[:n]]]
    y = feats[[idx[k] for k in real[:n]]]
    got_fvd = get_metric("fvd").set_fn(x, y, OFFICIAL)
    got_kvd = get_metric("kvd").set_fn(x, y, OFFICIAL)
    assert abs(got_fvd - fvd) <= 1e-3 * abs(fvd), (got_fvd, fvd)
    assert abs(got_kvd - kvd) <= 1e-4, (got_kvd, kvd)


def test_end_to_end_fvd_kvd(i3d_e2e: tuple, i3d_expected: tuple[dict, dict]) -> None:
    feats, _ = i3d_e2e
    npz, js = i3d_expected
    _check_fvd_kvd(feats, npz["names"].tolist(), js["fake"], js["real"], js["fvd"], js["kvd"])


def test_end_to_end_24_frames(i3d_weights_dir: Path, i3d_expected: tuple[dict, dict]) -> None:
    """The README-default compat: 24 frames per clip (expected_24frames.json)."""
    _pipeline_or_skip()
    exp = json.loads((FIXTURE / "expected_24frames.json").read_text())
    assert exp["max_frames"] == 24
    enc = I3DEncoder(OFFICIAL.replace(fvd_frames=24), device="cpu", batch_size=4)
    enc.load(i3d_weights_dir)
    feats, videos = _e2e_features(enc, exp["names"])
    assert all(v.shape[0] == 24 for v in videos)
    diffs = np.abs(feats - np.asarray(exp["i3d_features"], np.float32)).max(axis=1)
    assert diffs.max() < LOGITS_ABS, dict(zip(exp["names"], diffs.round(8).tolist()))
    _, js = i3d_expected
    _check_fvd_kvd(feats, exp["names"], js["fake"], js["real"], exp["fvd"], exp["kvd"])
