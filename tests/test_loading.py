import pytest

from train.errors import ModelLoadError, UnsafeModelError
from train.loading import load_keras_model


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_keras_model(tmp_path / "nope.keras")


def test_not_a_keras_model(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a Keras model"):
        load_keras_model(p)


def test_text_file_named_keras(tmp_path):
    p = tmp_path / "fake.keras"
    p.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a valid .keras archive"):
        load_keras_model(p)


def test_truncated_keras(tensor_model, tmp_path):
    p = tmp_path / "cut.keras"
    data = tensor_model.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated|not a valid"):
        load_keras_model(p)


def test_lambda_refused_in_safe_mode_names_the_flag(lambda_model):
    with pytest.raises(UnsafeModelError, match="--unsafe-load"):
        load_keras_model(lambda_model)


def test_lambda_loads_when_explicitly_unsafe(lambda_model):
    model = load_keras_model(lambda_model, unsafe=True)
    assert any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_run_dir_resolves_to_model(tiny_run):
    model = load_keras_model(tiny_run)
    assert tuple(model.inputs[0].shape)[1:] == (16, 16, 3)
