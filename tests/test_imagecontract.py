"""The pixel contract in Python (train/imagecontract.py) against independent oracles, and the golden
vectors the apps' tests read (golden/preprocessing) against a fresh run of it."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from mobilepack.golden import _sources, encode_png, exif_orientation, write_golden
from train.imagecontract import composite, decode, orient, resample
from train.preprocessing import read_rgb_image

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden/preprocessing"
_PIL = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from(sorted(_PIL)), st.integers(0, 2**32 - 1))
def test_resample_is_pillows_resampler_horizontal_then_vertical(ih, iw, oh, ow, method, seed):
    """Oracle: Pillow resizing one axis at a time (a single-axis Pillow resize has no order to choose)."""
    a = np.random.default_rng(seed).integers(0, 256, (ih, iw, 3)).astype(np.uint8)
    want = np.asarray(Image.fromarray(a).resize((ow, ih), _PIL[method]).resize((ow, oh), _PIL[method]))
    assert np.array_equal(resample(a, (oh, ow), method), want)


def test_upscaling_is_bit_identical_to_the_pillow_resize_training_used():
    """digits (8x8) and most datasets are enlarged to the model size: there the old path is unchanged."""
    a = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    for size in (16, 32, 96):
        assert np.array_equal(resample(a, (size, size)), np.asarray(Image.fromarray(a).resize((size, size),
                                                                                                 Image.BILINEAR)))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("little_endian", [True, False], ids=["II", "MM"])
def test_exif_orientation_matches_pillows_exif_transpose(orientation, little_endian):
    a = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    data = encode_png(a, exif=exif_orientation(orientation, little_endian))
    rgba, found = decode(data)
    import io

    with Image.open(io.BytesIO(data)) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert found == orientation and np.array_equal(orient(rgba, found)[..., :3], want)


def test_alpha_is_composited_on_white_rounded_to_nearest():
    rgba = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [0, 100, 200, 128], [10, 20, 30, 1]]], np.uint8)
    # by hand: a=0 -> white; a=255 -> the color; (c*128 + 255*127 + 127) // 255; (c + 255*254 + 127) // 255
    assert composite(rgba).tolist() == [[[255, 255, 255], [0, 0, 0], [127, 177, 227], [254, 254, 254]]]


@pytest.mark.parametrize("name", ["gray16-down", "rgb16-down", "rgba16-down", "gray-alpha-down",
                                  "palette-alpha-down", "gray8-down"])
def test_decode_follows_the_contract_for_each_png_kind(name):
    """Expected RGBA from the samples the PNG was written from, not from the decoder."""
    [(_, samples, kwargs, _, _)] = [c for c in _sources() if c[0] == name]
    if "palette" in kwargs:
        want = kwargs["palette"][samples]
    else:
        s = (samples >> 8).astype(np.uint8) if samples.dtype == np.uint16 else samples
        gray_like = s.shape[2] <= 2
        rgb = np.repeat(s[..., :1], 3, axis=2) if gray_like else s[..., :3]
        alpha = s[..., -1:] if s.shape[2] in (2, 4) else np.full(s.shape[:2] + (1,), 255)
        want = np.concatenate([rgb, alpha], axis=2)
    rgba, orientation = decode(GOLDEN / f"{name}.png")
    assert orientation == 1 and np.array_equal(rgba, want.astype(np.uint8))


def test_16_bit_grayscale_is_scaled_not_saturated(tmp_path):
    """Pillow's own convert("RGB") clips 16-bit gray at 255, turning every photo white."""
    path = tmp_path / "g16.png"
    path.write_bytes(encode_png(np.array([[[0], [0x7F00], [0xFFFF]]], np.uint16)))
    assert read_rgb_image(path)[0, :, 0].tolist() == [0, 0x7F, 0xFF]


def test_golden_vectors_are_what_python_computes_now(tmp_path):
    """The committed golden files (read by the apps' tests) must follow any change to the contract:
    regenerate them with `python -m mobilepack.golden golden/preprocessing`."""
    count = write_golden(tmp_path / "g")
    assert count >= 40
    assert (tmp_path / "g/cases.txt").read_text() == (GOLDEN / "cases.txt").read_text()
    for line in (GOLDEN / "cases.txt").read_text().splitlines():
        name = line.split()[0]
        assert (tmp_path / f"g/{name}.png").read_bytes() == (GOLDEN / f"{name}.png").read_bytes(), name
        fresh, kept = (np.asarray(Image.open(p / f"{name}.expected.png")) for p in (tmp_path / "g", GOLDEN))
        assert np.array_equal(fresh, kept), name


@pytest.mark.bad_input("loader")
@pytest.mark.parametrize("exif", [pytest.param(b"hello, not a TIFF header", id="exif-not-tiff"),
                                  pytest.param(exif_orientation(6, True)[:12], id="exif-truncated"),
                                  pytest.param(exif_orientation(9, False), id="exif-orientation-9"),
                                  pytest.param(exif_orientation(0, True), id="exif-orientation-0")])
def test_damaged_exif_reads_the_pixels_as_stored(exif, tmp_path):
    """A photo with broken EXIF still loads (training, serve), upright as stored, never a traceback."""
    a = np.random.default_rng(3).integers(0, 256, (3, 4, 3)).astype(np.uint8)
    path = tmp_path / "damaged.png"
    path.write_bytes(encode_png(a, exif=exif))
    assert np.array_equal(read_rgb_image(path), a)


def test_kotlin_contract_reproduces_every_golden_case(kotlin_jar):
    """The Android app's ImageContract.kt, decoding with ImageIO on the JVM, against Python's pixels."""
    from mobilepack.golden import run_contract_check

    cases = [ln for ln in (GOLDEN / "cases.txt").read_text().splitlines() if ln.strip()]
    check = run_contract_check(kotlin_jar, "golden", GOLDEN)
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(cases) >= 40
    assert f"golden: {len(cases)} case(s), max Kotlin-vs-Python difference 0 LSB" in check.stdout, check.stdout


def test_the_apps_implement_the_contract_not_their_platform_scalers():
    """No compiler for Swift here, and no Android SDK: what can be read is held to Python's contract."""
    import re

    from mobilepack.golden import KOTLIN_MAIN
    from train.imagecontract import BACKGROUND, CONTRACT, PRECISION_BITS, TOLERANCE_LSB
    from train.preprocessing import Preprocessing

    kotlin = "\n".join(p.read_text() for p in KOTLIN_MAIN.glob("*.kt"))
    swift = "\n".join(p.read_text() for p in (ROOT / "ios_demo/MobilepackDemo").glob("*.swift"))
    assert "createScaledBitmap" not in kotlin and "ImageDecoder" not in kotlin  # ImageDecoder rotates on API 28+
    assert "inPremultiplied = false" in kotlin
    assert "VNImageRequestHandler(cgImage" not in swift and "VNImageRequestHandler(cvPixelBuffer" in swift
    for text, bits, tol, white in ((kotlin, "PRECISION_BITS = ", "TOLERANCE_LSB = ", "WHITE = intArrayOf("),
                                   (swift, "precisionBits = ", "toleranceLSB = ", "white = [")):
        assert int(re.search(re.escape(bits) + r"(\d+)", text)[1]) == PRECISION_BITS
        assert int(re.search(re.escape(tol) + r"(\d+)", text)[1]) == TOLERANCE_LSB
        assert [int(v) for v in re.search(re.escape(white) + r"([\d, ]+)", text)[1].split(",")] == list(BACKGROUND)
    assert Preprocessing(image_size=(4, 4)).to_dict()["contract"] == CONTRACT  # what the manifest carries


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_serve_reads_a_rotated_phone_photo_upright(orientation):
    """An upload whose EXIF says 'rotate' gives the model what the upright picture gives it."""
    from mobilepack.serve.inputs import ImageLimits, tensor_from_image
    from train.preprocessing import Preprocessing

    upright = np.random.default_rng(orientation).integers(0, 256, (9, 14, 3)).astype(np.uint8)
    # What the camera stored: the upright picture turned back, so that applying `orientation` restores it.
    undo = {3: 3, 6: 8, 8: 6}[orientation]
    stored = orient(upright, undo)
    prep = Preprocessing(image_size=(8, 8))
    rotated = tensor_from_image(encode_png(stored, exif=exif_orientation(orientation, True)), prep, ImageLimits())
    plain = tensor_from_image(encode_png(upright), prep, ImageLimits())
    assert np.array_equal(rotated, plain) and not np.array_equal(
        plain, tensor_from_image(encode_png(stored), prep, ImageLimits()))
