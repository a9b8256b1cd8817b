"""`javisbench export`: per-sample and per-cell tables that pandas reads back equal to the results."""
from __future__ import annotations

import builtins
import importlib.util
import json
from pathlib import Path

import pytest

from javisbench.cli import main
from javisbench.frames import CELL_COLUMNS

pd = pytest.importorskip("pandas")


def _results() -> dict:
    """A hand-made results file: 3 samples, one per-sample and one set metric, labels on one aspect."""
    tax = {"name": "t", "version": "1", "description": "", "aspects": [
        {"key": "sound", "title": "Sound", "column": "cat0_ind", "subcategory_column": None, "multi_label": True,
         "description": "", "categories": [{"key": "music", "title": "", "description": "", "subcategories": []},
                                           {"key": "speech", "title": "", "description": "", "subcategories": []}]}]}
    return {
        "schema_version": "1.2", "bench": {"name": "hand"}, "protocol": {"name": "javisbench-official"},
        "model": {"name": "m"}, "sample_ids": ["sample_0000", "sample_0001", "sample_0002"],
        "metrics": {"clip_score": {"kind": "sample"}, "fvd": {"kind": "set"}},
        "labels": {"taxonomy": tax, "categories": {"sound": [[0], [1], [0, 1]]}, "subcategories": {}},
        "overall": {"clip_score": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 3, "n_failed": 0},
                    "fvd": {"value": 120.5, "ci_low": 100.0, "ci_high": 140.0, "n": 3, "n_failed": 0}},
        "per_category": {"sound": {"music": {"clip_score": {"value": 0.25, "ci_low": None, "ci_high": None, "n": 2,
                                                           "flags": ["small-n"]}},
                                   "speech": {"clip_score": {"value": 0.35, "ci_low": 0.3, "ci_high": 0.4, "n": 2}}}},
        "per_sample": {"sample_0000": {"clip_score": 0.2}, "sample_0001": {"clip_score": 0.4},
                       "sample_0002": {"clip_score": None}},
    }


@pytest.fixture()
def results_file(tmp_path: Path) -> Path:
    p = tmp_path / "run.json"
    p.write_text(json.dumps(_results()))
    return p


def test_csv(results_file: Path, tmp_path: Path) -> None:
    assert main(["export", str(results_file), "--format", "csv", "--out", str(tmp_path / "t")]) == 0
    s = pd.read_csv(tmp_path / "t" / "run_samples.csv")
    assert list(s.columns) == ["sample_id", "metric", "value", "sound"]
    assert s.sample_id.tolist() == ["sample_0000", "sample_0001", "sample_0002"]
    assert s.value.iloc[:2].tolist() == [0.2, 0.4] and pd.isna(s.value.iloc[2])
    assert s.sound.tolist() == ["music", "speech", "music|speech"]
    c = pd.read_csv(tmp_path / "t" / "run_cells.csv")
    assert c[["aspect", "category", "metric"]].values.tolist() == [
        ["overall", "all", "clip_score"], ["overall", "all", "fvd"], ["sound", "music", "clip_score"],
        ["sound", "speech", "clip_score"]]
    assert c.n.tolist() == [3, 3, 2, 2] and c.value.tolist() == [0.3, 120.5, 0.25, 0.35]
    assert pd.isna(c.ci_low.iloc[2]) and c["flags"].iloc[2] == "small-n"
    before = (tmp_path / "t" / "run_cells.csv").read_bytes()
    main(["export", str(results_file), "--format", "csv", "--out", str(tmp_path / "t")])
    assert (tmp_path / "t" / "run_cells.csv").read_bytes() == before          # same input, same bytes


def test_xlsx(results_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    assert main(["export", str(results_file), "--format", "xlsx", "--out", str(tmp_path)]) == 0
    sheets = pd.read_excel(tmp_path / "run.xlsx", sheet_name=None)
    assert set(sheets) == {"samples", "cells"}
    assert sheets["samples"].shape == (3, 4) and sheets["cells"].shape == (4, len(CELL_COLUMNS))


def test_parquet_or_a_clear_message(results_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("pyarrow") is not None:
        assert main(["export", str(results_file), "--format", "parquet", "--out", str(tmp_path)]) == 0
        assert pd.read_parquet(tmp_path / "run_samples.parquet").shape == (3, 4)
        real_find = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "pyarrow" else real_find(n, *a))
    rc = main(["export", str(results_file), "--format", "parquet", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc != 0 and "needs the Python package 'pyarrow'" in err and "pip install pyarrow" in err
    assert "Traceback" not in err and not (tmp_path / "p" / "run_samples.parquet").exists()
