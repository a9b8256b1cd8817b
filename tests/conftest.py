"""Shared test setup.

The hub-offline variables must be set before anything imports huggingface_hub: tests never
touch the network, and a library that tries must fail fast instead of retrying for minutes.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
# MKL's strict reproducibility mode, as javisbench sets it when its encoders load: MKL reads it at
# its first call, which in a test session can come from any earlier test (a reference model, say),
# so it is set before anything runs; the numbers then do not depend on which tests ran first
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def golden_inputs() -> Path:
    return GOLDEN / "inputs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full-size model tests (marked ``slow``) run only when asked: ``-m slow`` or JAVISBENCH_SLOW=1."""
    if os.environ.get("JAVISBENCH_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="full-size model test: run with -m slow or JAVISBENCH_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------------------------------
# tests that need an optional extra skip, with the install command, when it is absent
# ---------------------------------------------------------------------------------------------
import importlib.util  # noqa: E402
import re  # noqa: E402

#: extra -> (the modules it provides, what in a test file shows that the file needs it)
EXTRAS = {
    "media": (("av", "cv2", "librosa", "soundfile"), re.compile(
        r"^\s*(import|from) (av|cv2|librosa|soundfile)\b|javisbench\.(cli|evaluate|decode|views|demo|api|meta_eval)\b"
        r"|reference_models\.(synthav|baselines)\b|metrics\.av_align\b", re.M)),
    "torch": (("torch",), re.compile(
        r"^\s*(import|from) torch\b|javisbench\.encoders\.\w|reference_models\.(javisdit|javisdit_pp|bridgedit|"
        r"mmdiffusion|avfulldit|cascades|blocks|interface|train|generate|data)\b", re.M)),
}


def _absent(module: str) -> bool:
    pretend = {m.strip() for m in os.environ.get("JAVISBENCH_TEST_PRETEND_MISSING", "").split(",") if m.strip()}
    return module in pretend or importlib.util.find_spec(module) is None


def missing_extras(path: Path) -> list[str]:
    """``"<extra> (<modules>)"`` for each extra the test file needs and this environment lacks."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for extra, (modules, pattern) in EXTRAS.items():
        gone = [m for m in modules if _absent(m)]
        if gone and pattern.search(text):
            out.append(f"{extra} ({', '.join(gone)})")
    return out


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> "pytest.Module | None":
    missing = missing_extras(Path(module_path))
    if not missing:
        return None
    reason = (f"needs the {' and '.join(missing)} extra: pip install -e '.[test]' "
              f"(or javisbench[{','.join(m.split()[0] for m in missing)}])")

    class _Skipped(pytest.Module):
        def collect(self):  # type: ignore[no-untyped-def]
            pytest.skip(reason, allow_module_level=True)

    return _Skipped.from_parent(parent, path=Path(module_path))
