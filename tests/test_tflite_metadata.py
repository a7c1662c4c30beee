"""Standard TFLite metadata on image classifiers, checked with a real client: MediaPipe Tasks' ImageClassifier."""

import numpy as np
import pytest

from benchmarks.runners import LiteRTRunner
from convert.manifest import load_manifest, verify_artifacts
from convert.tflite.metadata import input_normalization, read_metadata
from train.data import load_dataset, load_split, split_indices
from train.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def shipped(tiny_dist):
    manifest = load_manifest(tiny_dist)
    prep = Preprocessing.from_dict(manifest.preprocessing)
    return tiny_dist, manifest, prep


@pytest.mark.parametrize("quant", ["fp32", "fp16", "dynamic", "int8"])
def test_every_tflite_carries_metadata(shipped, quant):
    dist, manifest, prep = shipped
    verify_artifacts(manifest, dist)  # the manifest's sha256 and size are of the file with metadata
    md = read_metadata((dist / f"model_{quant}.tflite").read_bytes())
    assert md["author"] and md["license"] and md["version"] == manifest.source["model_sha256"][:12]
    assert quant in md["name"] and f"{len(manifest.labels)}-class image classifier" in md["description"]
    assert md["min_parser_version"] == "1.0.0"
    assert md["output"]["label_file"] == "labels.txt"
    assert md["packed_files"]["labels.txt"].split("\n")[:-1] == manifest.labels
    if quant == "int8":  # uint8 raw-pixel input: no normalization for the client to apply
        assert md["input"]["mean"] is None and md["input"]["std"] is None
    else:  # normalization is baked into the model, so the client's is the identity on 0-255 pixels
        assert md["input"]["mean"] == [0.0] * 3 and md["input"]["std"] == [1.0] * 3
    assert md["input"]["color_space"] == "RGB"


def test_normalization_outside_the_model_is_written_from_preprocessing():
    prep = Preprocessing(image_size=(8, 8), normalization_in_model=False, mean=(123.7, 116.3, 103.5),
                         std=(58.4, 57.1, 57.4))
    assert input_normalization(prep, "float32") == ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])
    assert input_normalization(prep, "integer") is None


@pytest.mark.parametrize("quant", ["fp32", "int8"])
def test_mediapipe_image_classifier_agrees_with_litert(shipped, quant):
    """MediaPipe reads the metadata (it refuses float models without NormalizationOptions) and must pick
    the same top-1 as the LiteRT interpreter fed through mobilepack's preprocessing."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    dist, manifest, prep = shipped
    path = dist / f"model_{quant}.tflite"
    dataset = load_dataset("digits", lambda m: None)
    idx = split_indices(dataset, load_split(dist / manifest.source["split_file"]), "test")[:60]
    x = prep.apply_batch([dataset.images[i] for i in idx])
    litert = np.argmax(LiteRTRunner(path).predict([x])[0], axis=1)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=3)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        top = []
        for image in x:  # already at the model's size: MediaPipe's own resize is not under test
            pixels = np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            categories = result.classifications[0].categories
            assert len(categories) == 3 and categories[0].score >= categories[1].score
            top.append(manifest.labels.index(categories[0].category_name))
    assert top == litert.tolist()


def test_non_image_models_get_no_metadata(tensor_model, tmp_path):
    from convert.api import ConvertConfig, convert

    convert(tensor_model, tmp_path / "d", ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    assert read_metadata((tmp_path / "d" / "model_fp32.tflite").read_bytes()) is None
