import numpy as np
import pytest
from PIL import Image

from train.data import load_digits_dataset, load_folder_dataset, stratified_split
from train.errors import DataError


def test_digits_are_rgb_0_255():
    d = load_digits_dataset()
    assert len(d) == 1797 and d.images[0].shape == (8, 8, 3)
    assert max(int(im.max()) for im in d.images) == 255


def test_split_is_stratified_disjoint_and_deterministic():
    labels = load_digits_dataset().labels
    a = stratified_split(labels, 0.2, 0.2, seed=5)
    b = stratified_split(labels, 0.2, 0.2, seed=5)
    assert a == b
    sets = [set(a[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == len(labels)
    for part in ("val", "test"):
        counts = np.bincount(labels[a[part]], minlength=10)
        assert counts.min() >= 30  # every class held out in proportion


def _folder(tmp_path, classes=("cat", "dog"), n=3, corrupt=0):
    root = tmp_path / "data"
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (6, 6), (i * 40, 0, 0)).save(root / c / f"{i}.png")
        for i in range(corrupt):
            (root / c / f"bad{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_folder_skips_corrupt_images_with_a_count(tmp_path):
    messages = []
    d = load_folder_dataset(_folder(tmp_path, corrupt=2), log=messages.append)
    assert len(d) == 6 and len(d.skipped) == 4
    assert d.class_names == ["cat", "dog"]
    assert any("skipped 4 unreadable" in m for m in messages)


@pytest.mark.bad_input("loader")
def test_all_corrupt_is_an_error(tmp_path):
    with pytest.raises(DataError, match="all 4 images are unreadable"):
        load_folder_dataset(_folder(tmp_path, n=0, corrupt=2), log=lambda m: None)


@pytest.mark.bad_input("loader")
def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_folder_dataset(tmp_path / "empty")


@pytest.mark.bad_input("loader")
def test_one_class_is_an_error(tmp_path):
    with pytest.raises(DataError, match="only one class"):
        load_folder_dataset(_folder(tmp_path, classes=("cat",)))


@pytest.mark.bad_input("loader")
def test_too_few_images_per_class_for_a_split():
    with pytest.raises(DataError, match="at least 3"):
        stratified_split(np.array([0, 0, 1, 1, 1]), 0.2, 0.2, 0)
