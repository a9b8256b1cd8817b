"""A test file that needs an optional extra which is absent is skipped with the install command,
not collected into an import error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_missing_media_extra_skips_with_the_install_command() -> None:
    env = dict(os.environ, JAVISBENCH_TEST_PRETEND_MISSING="av,librosa")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_decode.py",
                        "tests/taxonomy/test_taxonomy_model.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "needs the media (av, librosa) extra: pip install -e '.[test]'" in out
    assert "skipped" in out and "passed" in out        # the taxonomy needs no media: it still runs
