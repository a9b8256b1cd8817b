"""Reference caches: the official layout round-trips, untrusted pickles are refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from javisbench.reference import ReferenceError, read_reference, write_reference


def test_official_layout_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    video, audio = rng.normal(size=(5, 400)).astype(np.float32), rng.normal(size=(5, 1024)).astype(np.float32)
    # exactly what the original's tool writes: torch.save of {'video': FloatTensor, 'audio': FloatTensor}
    torch.save({"video": torch.from_numpy(video), "audio": torch.from_numpy(audio)}, tmp_path / "b-vanilla-max4s.pt")
    ref = read_reference(tmp_path / "b-vanilla-max4s.pt")
    np.testing.assert_array_equal(ref[("i3d", "logits")], video)
    np.testing.assert_array_equal(ref[("audioclip", "embedding")], audio)
    for suffix in (".pt", ".npz"):
        out = write_reference(ref, tmp_path / f"copy{suffix}")
        again = read_reference(out)
        assert set(again) == set(ref)
        for k in ref:
            np.testing.assert_array_equal(again[k], ref[k])
    raw = torch.load(tmp_path / "copy.pt", weights_only=True)
    assert set(raw) == {"video", "audio"} and raw["video"].dtype == torch.float32


class _Exploit:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run a command when unpickled
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"video": torch.zeros(2, 400), "audio": _Exploit()}, bad)
    with pytest.raises(ReferenceError, match="refused"):
        read_reference(bad)
    assert not (tmp_path / "pwned.txt").exists()
    with open(tmp_path / "evil.npz", "wb") as f:
        np.save(f, np.array([_Exploit()], dtype=object), allow_pickle=True)
    with pytest.raises(ReferenceError):
        read_reference(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("content, match", [
    ({"video": torch.zeros(3, 399)}, r"expected \[N, 400\]"),
    ({"other": torch.zeros(3, 400)}, "no 'video' or 'audio'"),
    ([1, 2, 3], "expected a dict"),
])
def test_malformed_caches(tmp_path: Path, content: object, match: str) -> None:
    torch.save(content, tmp_path / "c.pt")
    with pytest.raises(ReferenceError, match=match):
        read_reference(tmp_path / "c.pt")


def test_not_a_torch_file(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(ReferenceError):
        read_reference(tmp_path / "x.pt")
    with pytest.raises(ReferenceError, match="does not exist"):
        read_reference(tmp_path / "missing.pt")
