"""scripts/within_class_spread.py: the rms distance of rows from their class means."""

from pathlib import Path

import pytest
import torch
from conftest import load_script


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))  # for common_args
    return load_script("within_class_spread")


def test_rms_from_class_means_against_a_hand_computed_case(script):
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    labels = torch.tensor([5, 5, 2, 2])
    rms, cos, means = script.rms_from_class_means(x, labels)
    # class 2 (sorted first): both rows at (0, 2), distance 0; class 5: mean (2, 0), distances 1 and 1
    assert torch.allclose(means, torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
    assert abs(rms - (2 / 4) ** 0.5) < 1e-6
    assert abs(cos - 1.0) < 1e-6  # every row points the way of its class mean
    rms_one, _, _ = script.rms_from_class_means(x, torch.zeros(4, dtype=torch.long))
    assert rms_one > rms  # one class for all rows: the spread between classes becomes within-class


def test_rms_distance_between_matching_rows(script):
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # row 0 moved by 5, row 1 not at all
    assert abs(script.rms_distance(a, b) - (25 / 2) ** 0.5) < 1e-6
    assert script.rms_distance(a, a) == 0.0
