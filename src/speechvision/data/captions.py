"""A caption grammar for spoken-fashion: every caption names the garment and its colour.

Templates are written over three slots: ``{np}`` a full noun phrase with determiner and colour
("an orange sneaker", "a pair of blue trousers"), ``{noun}``/``{be}`` for predicative templates
("the trousers are blue"), and ``{colour}``. Changing only the colour word of a caption gives the
paper's colour-keyword experiment (:func:`caption`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FASHION_CLASSES = ("t-shirt", "trousers", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle boot")

# sRGB palette from the issue (name -> colour).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25), "orange": (245, 130, 20), "yellow": (240, 210, 20), "green": (30, 160, 50),
    "blue": (30, 70, 220), "purple": (130, 40, 180), "pink": (240, 110, 180), "black": (25, 25, 25),
}
COLOURS = tuple(PALETTE)


@dataclass(frozen=True)
class Noun:
    text: str
    plural: bool = False  # plural nouns take "a pair of" / "are"


SYNONYMS: dict[str, tuple[Noun, ...]] = {
    "t-shirt": (Noun("t-shirt"), Noun("top"), Noun("tee")),
    "trousers": (Noun("trousers", True), Noun("pants", True), Noun("slacks", True)),
    "pullover": (Noun("pullover"), Noun("sweater"), Noun("jumper")),
    "dress": (Noun("dress"), Noun("frock"), Noun("summer dress")),
    "coat": (Noun("coat"), Noun("jacket"), Noun("overcoat")),
    "sandal": (Noun("sandal"), Noun("sandals", True), Noun("summer sandal")),
    "shirt": (Noun("shirt"), Noun("button-up shirt"), Noun("blouse")),
    "sneaker": (Noun("sneaker"), Noun("trainer"), Noun("running shoe")),
    "bag": (Noun("bag"), Noun("handbag"), Noun("purse")),
    "ankle boot": (Noun("ankle boot"), Noun("boot"), Noun("short boot")),
}

TEMPLATES: tuple[str, ...] = (
    "{np}",
    "this is {np}",
    "show me {np}",
    "a picture of {np}",
    "i see {np}",
    "here is {np}",
    "draw {np}",
    "an image of {np}",
    "the {noun} {be} {colour}",
    "this {noun} {be} {colour}",
    "it is {np}",
    "a photo of {np} on a white background",
    "look at {np}",
    "can you show me {np}",
    "there is {np} in the picture",
    "please generate {np}",
    "the picture shows {np}",
    "my favourite {noun} {be} {colour}",
    "what i want is {np}",
    "{np} on a plain white background",
    "a simple drawing of {np}",
    "you can see {np} here",
    "the {noun} in this image {be} {colour}",
    "someone is selling {np}",
)


# Grammar v2 (issue 17): the training grammar plus phrasing as people talk, other instances of the styles that
# HELDOUT_TEMPLATES tests: the colour after the noun, distractor words (materials, seasons, sizes, politeness,
# time), plurals with counts, and questions. Extra slots: {plural} (the noun in the plural), {article}.
TEMPLATES_V2: tuple[str, ...] = TEMPLATES + (
    "i want the {noun} in {colour}",
    "get me {article} {noun} that is {colour}",
    "the {noun} should be {colour}",
    "{article} {noun} coloured {colour}",
    "a cotton {colour} {noun}",
    "{np} for the summer",
    "a large {colour} {noun}",
    "please, {np}",
    "{np} for next week",
    "two {colour} {plural}",
    "a few {colour} {plural} please",
    "have you got {np}",
    "where can i find {np}",
    "um, {np}, i think",
)
GRAMMARS = {"v1": TEMPLATES, "v2": TEMPLATES_V2}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(noun: Noun, colour: str) -> str:
    if noun.plural:
        return f"a pair of {colour} {noun.text}"
    return f"{_article(colour)} {colour} {noun.text}"


def caption(template: int, garment: str, synonym: int, colour: str, grammar: str = "v1") -> str:
    """Render one caption of ``GRAMMARS[grammar]``; the same (template, garment, synonym) with another colour
    differs only in the colour word (and its article). v2 keeps v1's templates at the same indices."""
    noun = SYNONYMS[garment][synonym]
    return GRAMMARS[grammar][template].format(
        np=noun_phrase(noun, colour), noun=noun.text, be="are" if noun.plural else "is", colour=colour,
        plural=plural(noun), article="a pair of" if noun.plural else _article(noun.text))


def caption_pool(garment: str, colour: str, size: int, rng: np.random.Generator, grammar: str = "v1") -> list[str]:
    """``size`` distinct captions for one garment-colour combination, drawn from the grammar."""
    grid = [(t, s) for t in range(len(GRAMMARS[grammar])) for s in range(len(SYNONYMS[garment]))]
    if size > len(grid):
        raise ValueError(f"caption pool of {size} exceeds the grammar's {len(grid)} captions")
    picks = rng.choice(len(grid), size=size, replace=False)
    return [caption(grid[i][0], garment, grid[i][1], colour, grammar) for i in picks]


# ---- held-out phrasings: test sets only (data/robust.py), never training or model selection ----------------
# How people also say it (issue 17): the colour after the noun, distractor words (materials, seasons, sizes,
# politeness, time), plurals with "some", and questions. Slots as above, plus {plural} (the noun in the
# plural) and {article} (the noun's article).
HELDOUT_TEMPLATES: tuple[str, ...] = (
    "{article} {noun} in {colour}",
    "{article} {noun}, the {colour} one",
    "do you have {np}",
    "could i see {np} please",
    "i am looking for {np} for tomorrow",
    "{np} in wool, warm enough for the winter",
    "{np}, size medium, please",
    "some {colour} {plural}",
    "i would like {np} made of leather",
    "is there {np} in the shop",
    "for the party i need {np}",
    "the {colour} {noun}, not the other one",
)

# Synonyms the training grammar never uses (test only).
HELDOUT_SYNONYMS: dict[str, tuple[Noun, ...]] = {
    "t-shirt": (Noun("tee shirt"), Noun("tank top")),
    "trousers": (Noun("jeans", True), Noun("chinos", True)),
    "pullover": (Noun("hoodie"), Noun("cardigan")),
    "dress": (Noun("gown"), Noun("evening dress")),
    "coat": (Noun("parka"), Noun("raincoat")),
    "sandal": (Noun("flip-flop"), Noun("slide")),
    "shirt": (Noun("dress shirt"), Noun("polo shirt")),
    "sneaker": (Noun("tennis shoe"), Noun("gym shoe")),
    "bag": (Noun("tote"), Noun("shoulder bag")),
    "ankle boot": (Noun("chelsea boot"), Noun("bootie")),
}


def plural(noun: Noun) -> str:
    """The noun in the plural ("sneaker" -> "sneakers"; plural nouns and "-ss"/"-sh" endings as English has them)."""
    if noun.plural:
        return noun.text
    if noun.text.endswith(("ss", "sh", "ch", "x")):
        return noun.text + "es"
    return noun.text + "s"


def heldout_caption(template: int, garment: str, synonym: int, colour: str, *, heldout_noun: bool) -> str:
    """One caption of the held-out grammar: ``HELDOUT_TEMPLATES[template]`` over the garment's ``synonym``-th
    noun, from :data:`HELDOUT_SYNONYMS` when ``heldout_noun``, else from the training :data:`SYNONYMS`."""
    noun = (HELDOUT_SYNONYMS if heldout_noun else SYNONYMS)[garment][synonym]
    article = "a pair of" if noun.plural else _article(noun.text)
    return HELDOUT_TEMPLATES[template].format(np=noun_phrase(noun, colour), noun=noun.text, colour=colour,
                                              plural=plural(noun), article=article)
