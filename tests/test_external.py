"""CUB, Oxford-102 and Flickr8k readers on fixture trees with the real file names and formats."""

import numpy as np
import pytest
import soundfile as sf
from conftest import sine
from PIL import Image

from speechvision.data.external import build_flickr8k, build_reed, crop_cub
from speechvision.data.manifest import DatasetError, load_dataset


def _jpg(path, size=(120, 90)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)


def _captions(path, n=10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"this bird number {k} has a red crown" for k in range(n)) + "\n")


def make_cub(root, with_audio=True):
    base = root / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    lines, boxes, n = [], [], 0
    for cls in classes:
        for j in range(2):
            n += 1
            name = f"{cls.split('.')[1]}_000{j}_{n}"
            _jpg(base / "images" / cls / f"{name}.jpg")
            lines.append(f"{n} {cls}/{name}.jpg")
            boxes.append(f"{n} 10.0 20.0 40.0 30.0")
            _captions(root / "text_c10" / cls / f"{name}.txt")
            if with_audio:
                for k in range(10):
                    (root / "audio" / cls / name).mkdir(parents=True, exist_ok=True)
                    sf.write(root / "audio" / cls / name / f"{k}.wav", sine(0.5), 22050)
    (base / "images.txt").write_text("\n".join(lines) + "\n")
    (base / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    (root / "trainvalclasses.txt").write_text("\n".join(classes[:2]) + "\n")
    (root / "testclasses.txt").write_text(classes[2] + "\n")


def test_cub_reader(tmp_path):
    make_cub(tmp_path / "cub")
    ds = load_dataset(build_reed("cub", tmp_path / "cub", tmp_path / "out", progress=False))
    assert ds.meta["splits"] == {"train": 4, "test": 2}
    r = ds.records[0]
    assert len(r.captions) == 10 and r.captions[0].voice == "dataset"
    # crop: half-size 0.75 * max(40, 30) = 30 around the centre (30, 35)
    assert Image.open(ds.path(r.image)).size == (60, 60)


def test_crop_is_clipped_to_image():
    img = Image.new("RGB", (50, 50))
    assert crop_cub(img, (0, 0, 40, 40)).size == (50, 50)


def test_oxford_reader_synthesises_missing_audio(tmp_path):
    root = tmp_path / "oxford"
    for c, cls in enumerate(["class_00001", "class_00002"]):
        name = f"image_0000{c + 1}"
        _jpg(root / "jpg" / f"{name}.jpg")
        _captions(root / "text_c10" / cls / f"{name}.txt", n=2)
    (root / "trainvalclasses.txt").write_text("class_00001\n")
    (root / "testclasses.txt").write_text("class_00002\n")
    ds = load_dataset(build_reed("oxford", root, tmp_path / "out", workers=1, progress=False))
    assert ds.meta["splits"] == {"train": 1, "test": 1}
    assert all((ds.root / c.audio).is_file() for r in ds.records for c in r.captions)


def test_missing_split_file_is_named(tmp_path):
    make_cub(tmp_path / "cub", with_audio=False)
    (tmp_path / "cub" / "testclasses.txt").unlink()
    with pytest.raises(DatasetError, match="testclasses.txt: missing"):
        build_reed("cub", tmp_path / "cub", tmp_path / "out", progress=False)


def test_flickr8k_reader(tmp_path):
    root = tmp_path / "f8k"
    names = [f"{1000 + i}_abc.jpg" for i in range(3)]
    tokens, w2c = [], []
    for i, name in enumerate(names):
        _jpg(root / "Flicker8k_Dataset" / name)
        for k in range(5):
            tokens.append(f"{name}#{k}\ta dog runs number {k}")
            wav = f"{name[:-4]}_{k}.wav"
            (root / "flickr_audio" / "wavs").mkdir(parents=True, exist_ok=True)
            sf.write(root / "flickr_audio" / "wavs" / wav, sine(0.5, 16000), 16000)
            w2c.append(f"{wav} {name} #{k}")
    (root / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    (root / "flickr_audio" / "wav2capt.txt").write_text("\n".join(w2c) + "\n")
    for split, sel in (("train", names[:1]), ("dev", names[1:2]), ("test", names[2:])):
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(sel) + "\n")
    ds = load_dataset(build_flickr8k(root, tmp_path / "out"))
    assert ds.meta["splits"] == {"train": 1, "val": 1, "test": 1}
    assert [len(r.captions) for r in ds.records] == [5, 5, 5]
    assert len({r.class_id for r in ds.records}) == 3 and ds.meta["class_relevance"] is False
