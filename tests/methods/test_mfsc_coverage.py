"""Every category every built-in adapter produces has a shipped MFSC caption file that validates."""
from __future__ import annotations

import json

import fake_trees
import pytest

from zsadbench import registry
from zsadbench.datasets.groups import ZSAD_DATASETS
from zsadbench.datasets.synthetic import SyntheticAuxDataset, SyntheticDataset
from zsadbench.methods.finegrainedad.mfsc import caption_path, load_captions, read_captions, shipped_dir
from zsadbench.methods.finegrainedad.mfsc.coverage import CAPTIONED_DATASETS, adapter_categories, missing_captions

BUILT_IN = (*ZSAD_DATASETS, "realiad", "synthetic", "synthetic_aux")


def _declared(dataset: str) -> list[str]:
    """The categories an adapter class declares, read straight from its attributes."""
    cls = registry.datasets().get(dataset)
    if issubclass(cls, SyntheticDataset):
        return list(cls.category_pool)
    return list(cls.expected_categories)


def test_the_captioned_datasets_are_the_protocol_realiad_and_synthetic():
    assert set(CAPTIONED_DATASETS) == set(BUILT_IN)
    assert len(BUILT_IN) == 18


@pytest.mark.parametrize("dataset", BUILT_IN)
def test_every_declared_category_has_a_valid_file(dataset):
    categories = _declared(dataset)
    assert categories, f"{dataset} declares no categories"
    assert list(adapter_categories(dataset)) == categories
    for category in categories:
        captions = read_captions(caption_path(shipped_dir(), dataset, category), dataset, category)
        assert (captions.dataset, captions.category) == (dataset, category)
        assert load_captions(dataset, category) == captions


def test_category_counts_match_the_datasets():
    counts = {d: len(_declared(d)) for d in BUILT_IN}
    assert counts["mvtec"] == 15 and counts["visa"] == 12 and counts["mpdd"] == 6 and counts["btad"] == 3
    assert counts["dagm"] == 10 and counts["dtd"] == 12 and counts["realiad"] == 30
    assert counts["synthetic"] == 15 and counts["synthetic_aux"] == 8
    assert sum(counts.values()) == len(list(shipped_dir().glob("*/*.json")))


def test_no_shipped_file_is_left_over():
    """Each shipped file belongs to a declared category (no misspelt names that nothing would load)."""
    declared = {(d, c) for d in BUILT_IN for c in _declared(d)}
    shipped = {(p.parent.name, p.stem) for p in shipped_dir().glob("*/*.json")}
    assert shipped == declared
    assert missing_captions(shipped_dir()) == []


def test_categories_indexed_from_fake_trees_have_captions(tmp_path):
    """The names adapters produce from data on disk (single-class renames included) all have captions."""
    root = fake_trees.make_fake_data_root(tmp_path)
    seen = 0
    for dataset in (*ZSAD_DATASETS, "realiad"):
        for category in registry.datasets().get(dataset)(root / dataset).categories():
            load_captions(dataset, category)
            seen += 1
    assert seen >= len(ZSAD_DATASETS) + 1


@pytest.mark.parametrize("cls", [SyntheticDataset, SyntheticAuxDataset])
def test_generated_synthetic_categories_have_captions(tmp_path, cls):
    dataset = cls(tmp_path / cls.name, size="small")
    categories = dataset.categories()
    assert len(categories) == 3
    for category in categories:
        assert load_captions(cls.name, category).category == category


def test_missing_captions_lists_what_a_folder_lacks(tmp_path):
    src = caption_path(shipped_dir(), "btad", "01")
    (tmp_path / "btad").mkdir()
    (tmp_path / "btad" / "01.json").write_text(src.read_text())
    assert missing_captions(tmp_path, ("btad",)) == [("btad", "02"), ("btad", "03")]


def test_shipped_files_are_canonical_json():
    """Files are written as ``to_dict`` writes them, so a regenerated file diffs cleanly."""
    for path in shipped_dir().glob("*/*.json"):
        captions = read_captions(path)
        assert json.loads(path.read_text()) == captions.to_dict(), path


def test_shipped_texts_fit_clip_context_with_room_for_prompt_tokens():
    """CLIP reads 77 tokens; prompts add learnable context words and defect phrases around each caption."""
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    for path in shipped_dir().glob("*/*.json"):
        captions = read_captions(path)
        texts = [captions.summary, captions.foreground_view.relation, *captions.component_view.captions]
        longest = max(len(tokenizer.encode(t)) for t in texts)
        assert longest <= 50, (path, longest)
