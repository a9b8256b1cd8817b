"""The metrics package is pure numerics: importing it pulls in neither torch, javisbench, cv2 nor librosa."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_imports_stay_light() -> None:
    code = (
        "import sys\n"
        "import metrics, metrics.frechet, metrics.kernel, metrics.similarity, metrics.avh, metrics.av_align, "
        "metrics.desync, metrics.bootstrap, metrics.size_correction\n"
        "assert metrics.__file__.startswith(sys.argv[1]), metrics.__file__\n"
        "heavy = sorted(m for m in ('torch', 'javisbench', 'cv2', 'librosa') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
