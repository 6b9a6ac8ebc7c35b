"""The cascade baseline (issue 17, item 7): ASR -> keywords -> canonical caption -> the same generator."""

import pytest

from speechvision.s2igan.cascade import keywords


@pytest.mark.parametrize("text, want", [
    ("A red sneaker.", ("sneaker", "red")),
    ("Show me a pair of blue pants", ("trousers", "blue")),
    ("an ankle boot in orange", ("ankle boot", "orange")),  # the longer noun, the colour after it
    ("Do you have a black coat? Actually the green one", ("coat", "green")),  # the last mention
    ("some purple t-shirts", ("t-shirt", "purple")),
    ("nothing to see here", (None, None)),
    ("a redder bag", ("bag", None)),  # whole words only
])
def test_keywords_find_the_last_garment_and_colour(text, want):
    assert keywords(text) == want


def test_cascade_hears_and_draws_a_bundled_example(tmp_path):
    from speechvision.demo import EXAMPLES
    from speechvision.s2igan.cascade import CascadePipeline
    from speechvision.s2igan.pipeline import S2IGANPipeline

    cascade = CascadePipeline(S2IGANPipeline.load())
    images = cascade.speech_to_images([EXAMPLES / "purple-dress.flac", EXAMPLES / "blue-trousers.flac"], seed=3)
    assert images[-1].shape == (2, 3, 64, 64)
    assert [keywords(t) for t in cascade.transcripts] == [("dress", "purple"), ("trousers", "blue")]
