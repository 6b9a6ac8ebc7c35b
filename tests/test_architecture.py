"""The layout rules of docs/architecture.md, read from the source by scripts/import_graph.py."""

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ig():
    return load_script("import_graph")


def test_no_import_cycle_counting_function_local_imports(ig):
    assert ig.cycles(ig.graph()) == []


def test_the_cycle_finder_finds_a_cycle(ig):
    assert ig.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_and_inference_apart_from_training(ig):
    assert ig.layer_violations(ig.graph()) == []


def test_the_layer_check_sees_inference_reaching_training(ig):
    g = {"speechvision.avlm.infer": {"speechvision.avlm.model"}, "speechvision.avlm.model": {"speechvision.avlm.train"},
         "speechvision.avlm.train": set(), "speechvision.core.audio": {"speechvision.data.manifest"}}
    found = ig.layer_violations(g)
    assert any("reaches training code speechvision.avlm.train" in v for v in found)
    assert any("(core) imports speechvision.data.manifest" in v for v in found)


def test_each_system_lives_in_one_folder(ig):
    top = {m.split(".")[1] for m in ig.modules() if m.count(".") >= 1}
    assert {"s2igan", "avlm", "core", "data", "metrics", "cli"} <= top
    assert not {"models", "training"} & top
    assert not [m for m in ig.modules() if "emotion" in m and not m.startswith("speechvision.avlm")]


def test_no_private_name_imported_across_modules(ig):
    assert ig.private_imports() == []


def test_files_and_functions_stay_small(ig):
    assert ig.size_violations() == []
