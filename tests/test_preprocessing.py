import numpy as np
import pytest
from PIL import Image

from train.errors import PreprocessingError
from train.preprocessing import Preprocessing, read_rgb_image


def test_json_roundtrip(tmp_path):
    p = Preprocessing(image_size=(24, 32), mean=(127.5,) * 3, std=(127.5,) * 3)
    p.save(tmp_path / "p.json")
    assert Preprocessing.load(tmp_path / "p.json") == p


@pytest.mark.bad_input("loader")
def test_missing_field_is_named(tmp_path):
    d = Preprocessing(image_size=(8, 8)).to_dict()
    del d["resize"]
    with pytest.raises(PreprocessingError, match="resize"):
        Preprocessing.from_dict(d)


@pytest.mark.bad_input("loader")
def test_unknown_schema_version_refused():
    d = Preprocessing(image_size=(8, 8)).to_dict() | {"schema_version": 99}
    with pytest.raises(PreprocessingError, match="schema_version 99"):
        Preprocessing.from_dict(d)


def test_bilinear_upscale_of_2x2_keeps_raw_pixel_range():
    img = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 255, 255], [0, 0, 0]]], np.uint8)
    x = Preprocessing(image_size=(4, 4)).apply(img)
    assert x.shape == (4, 4, 3) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255
    # Corners keep their source pixel; the centre is the mean of all four.
    assert x[0, 0, 0] == 0 and x[0, 3, 0] == 255
    assert x[1:3, 1:3].mean() == pytest.approx(127.5, abs=1.0)


def test_bgr_and_nchw_layouts():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 10  # red
    x = Preprocessing(image_size=(2, 2), channel_order="BGR", layout="NCHW").apply(img)
    assert x.shape == (3, 2, 2)
    assert (x[2] == 10).all() and (x[0] == 0).all()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_image_mode_reads_as_rgb(tmp_path, mode):
    path = tmp_path / f"img_{mode}.png" if mode != "CMYK" else tmp_path / "img.jpg"
    Image.new(mode, (5, 3)).save(path)
    arr = read_rgb_image(path)
    assert arr.shape == (3, 5, 3) and arr.dtype == np.uint8
