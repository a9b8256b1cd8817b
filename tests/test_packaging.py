"""The four top-level packages resolve inside this repository (nothing third-party shadows them)."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["javisbench", "metrics", "taxonomy", "reference_models"])
def test_package_resolves_in_repo(name: str) -> None:
    mod = importlib.import_module(name)
    assert Path(mod.__file__).resolve().is_relative_to(REPO), mod.__file__


def test_pure_packages_never_import_javisbench() -> None:
    code = ("import sys, metrics.frechet, metrics.kernel, metrics.avh, metrics.bootstrap, metrics.similarity, "
            "metrics.desync, taxonomy, taxonomy.breakdown, reference_models.synthav, reference_models.baselines; "
            "bad = [m for m in sys.modules if m == 'javisbench' or m.startswith('javisbench.') or m == 'torch']; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "<!-- test-command" in readme and "test-command" in ci
    assert "javisbench demo" in readme
    assert "exit 5" in ci or '"$rc" -eq 5' in ci
