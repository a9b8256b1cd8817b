"""Taxonomy data: the shipped JavisBench file (counts, order, titles) and validation of user files."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import taxonomy
from taxonomy import Taxonomy, TaxonomyError, load_taxonomy, slugify

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy("javisbench")


def test_package_resolves_inside_repo_and_never_imports_javisbench() -> None:
    # A third-party `taxonomy` must not shadow ours, and ours must stay independent of javisbench.
    code = (
        "import sys, taxonomy, taxonomy.labels, taxonomy.splits, taxonomy.model\n"
        "print(taxonomy.__file__)\n"
        "print(any(m == 'javisbench' or m.startswith('javisbench.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    path, imported = out.stdout.split()
    assert Path(path).resolve().parent == REPO / "taxonomy"
    assert imported == "False"
    # and in this process too (tests/taxonomy/ has no __init__.py, so it cannot shadow the package)
    assert Path(taxonomy.__file__).resolve() == REPO / "taxonomy" / "__init__.py"


def test_counts(tax: Taxonomy) -> None:
    assert tax.name == "javisbench" and tax.version == "1.0"
    assert len(tax.aspects) == 5
    assert tax.n_categories == 19
    assert tax.n_subcategories == 68
    assert [a.n_categories for a in tax.aspects] == [5, 3, 5, 3, 3]
    # spec section 7, per category in category.json order
    assert [[len(c.subcategories) for c in a.categories] for a in tax.aspects] == [
        [9, 0, 7, 6, 5], [8, 9, 6], [5, 0, 0, 6, 7], [0, 0, 0], [0, 0, 0],
    ]


def test_order_columns_and_multi_label(tax: Taxonomy) -> None:
    # JSON order: Temporal (3) before Spatial (4), unlike the paper's table.
    assert tax.aspect_keys == ("event_scenario", "visual_style", "sound_type", "temporal", "spatial")
    assert tax.columns == ("cat0_ind", "cat1_ind", "cat2_ind", "cat3_ind", "cat4_ind")
    assert [a.multi_label for a in tax.aspects] == [False, False, True, False, True]
    assert [a.subcategory_column for a in tax.aspects] == [f"subcat{i}_ind" for i in range(5)]
    assert [a.index for a in tax.aspects] == list(range(5))


def test_titles_in_index_order(tax: Taxonomy) -> None:
    titles = {a.key: [c.title for c in a.categories] for a in tax.aspects}
    assert titles == {
        "event_scenario": ["Natural", "Urban", "Living", "Industrial", "Virtual"],
        "visual_style": ["Camera Shooting", "2D-Animate", "3D-Animate"],
        "sound_type": ["Ambient", "Biological", "Mechanical", "Musical", "Speech"],
        "temporal": ["Single event", "Sequential events", "Simultaneous events"],
        "spatial": ["Single subject", "Multiple subjects", "Off-screen sound"],
    }
    for a in tax.aspects:
        assert [c.index for c in a.categories] == list(range(a.n_categories))
        assert all(c.description for c in a.categories)


def test_subcategory_titles_and_flat_index(tax: Taxonomy) -> None:
    natural = tax.aspect("event_scenario").category("natural")
    assert natural.subcategories[0].title == "Forest/Woodland"
    assert natural.subcategories[-1].title == "Volcanic/Geothermal"
    anim = tax.aspect("visual_style").category("animate_2d")
    # the official duplicate is kept (it holds an index), under a distinct key
    assert [s.title for s in anim.subcategories][6:8] == ["Sketch", "sketch style"]
    assert [s.key for s in anim.subcategories][6:8] == ["sketch", "sketch_style"]
    for a in tax.aspects:
        flat = a.subcategories
        assert [s.index for s in flat] == list(range(len(flat)))
        for c in a.categories:
            assert all(s.category == c.key for s in c.subcategories)
            assert [s.local_index for s in c.subcategories] == list(range(len(c.subcategories)))
    # Living's subcategories follow Natural's nine (Urban has none)
    assert tax.aspect("event_scenario").category("living").subcategories[0].index == 9
    assert tax.aspect("sound_type").category("musical").subcategory("band").index == 5 + 2


def test_lookup_errors_list_choices(tax: Taxonomy) -> None:
    with pytest.raises(KeyError, match="event_scenario, visual_style"):
        tax.aspect("sound")
    with pytest.raises(KeyError, match="ambient, biological"):
        tax.aspect("sound_type").category("music")


def test_roundtrip_and_fingerprint(tax: Taxonomy, tmp_path: Path) -> None:
    again = Taxonomy.from_dict(tax.to_dict())
    assert again == tax and again.fingerprint == tax.fingerprint
    f = tmp_path / "mybench.yaml"
    f.write_text(yaml.safe_dump(tax.to_dict(), sort_keys=False))
    from_file = load_taxonomy(f)
    assert from_file == tax and from_file.source == str(f)
    assert load_taxonomy(str(f)) == tax
    changed = tax.to_dict()
    changed["aspects"][2]["categories"][0]["title"] = "Ambience"
    assert Taxonomy.from_dict(changed).fingerprint != tax.fingerprint


def test_builtin_lookup() -> None:
    assert "javisbench" in taxonomy.builtin_taxonomies()
    assert load_taxonomy() is load_taxonomy("javisbench")
    with pytest.raises(KeyError, match="built in: javisbench"):
        load_taxonomy("javisbench2")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_taxonomy("nope.yaml")


def test_slugify() -> None:
    assert slugify("Orchestral & Choral") == "orchestral_and_choral"
    assert slugify("Panoramic/360") == "panoramic_360"
    assert slugify(" Post-Apocalyptic/Dystopian ") == "post_apocalyptic_dystopian"


def _minimal() -> dict:
    return {
        "name": "mini",
        "version": "0.1",
        "aspects": [
            {"key": "colour", "title": "Colour", "column": "c0", "multi_label": True,
             "categories": [{"key": "red", "title": "Red", "subcategories": ["Dark red", {"key": "pink", "title": "Light red"}]},
                            {"key": "blue", "title": "Blue"}]},
            {"key": "size", "title": "Size", "column": "c1",
             "categories": [{"key": "small", "title": "Small"}]},
        ],
    }


def test_user_defined_minimal() -> None:
    t = Taxonomy.from_dict(_minimal())
    assert t.aspect("size").multi_label is False            # default
    assert t.aspect("colour").subcategory_column == "subc0"  # "sub" + column
    assert [s.key for s in t.aspect("colour").subcategories] == ["dark_red", "pink"]


def _mutate(path: str, value, delete: bool = False) -> dict:
    d = copy.deepcopy(_minimal())
    keys = path.split(".")
    obj = d
    for k in keys[:-1]:
        obj = obj[int(k)] if isinstance(obj, list) else obj[k]
    last = int(keys[-1]) if isinstance(obj, list) else keys[-1]
    if delete:
        del obj[last]
    else:
        obj[last] = value
    return d


@pytest.mark.parametrize(
    "path, value, delete, match",
    [
        ("aspects.1.key", "colour", False, r"duplicate aspect key\(s\) \['colour'\]"),
        ("aspects.0.categories.1.key", "red", False, r"aspects\[0\] \(colour\): duplicate category key\(s\) \['red'\]"),
        ("aspects.0.categories.1.title", "RED", False, r"duplicate category title"),
        ("aspects.1.categories", [], False, r"aspects\[1\] \(size\): an aspect needs at least one category"),
        ("aspects.1.column", "c0", False, r"label column\(s\) \['c0', 'subc0'\] used twice"),
        ("aspects.1.column", "text", False, r"clash with manifest columns"),
        ("aspects.1.column", "", False, r"'column' must be a non-empty"),
        ("aspects.1.column", None, True, r"missing required field\(s\) \['column'\]"),
        ("aspects.1.key", "Size Of", False, r"key must be lower-case words"),
        ("aspects.1.multi_label", "yes", False, r"'multi_label' must be true or false"),
        ("aspects.1.colour", 1, False, r"unknown field\(s\) \['colour'\]"),
        ("version", 1.0, False, r"quote it"),
        ("aspects", [], False, r"non-empty list of aspects"),
        ("aspects.0.categories.0.subcategories", ["A b", "a-b"], False, r"duplicate subcategory key\(s\) \['a_b'\]"),
    ],
)
def test_validation_errors(path: str, value, delete: bool, match: str) -> None:
    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.from_dict(_mutate(path, value, delete), source="bench.yaml")


def test_error_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nversion: '1'\naspects: [{key: a, title: A, column: c, categories: []}]\n")
    with pytest.raises(TaxonomyError, match=r"bad\.yaml: aspects\[0\] \(a\)"):
        load_taxonomy(f)
    f.write_text("name: [unclosed\n")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        load_taxonomy(f)
