import pytest

from train.errors import ModelLoadError, UnsafeModelError
from train.loading import load_keras_model


@pytest.mark.bad_input("loader")
def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_keras_model(tmp_path / "nope.keras")


@pytest.mark.bad_input("loader")
def test_not_a_keras_model(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a Keras model"):
        load_keras_model(p)


@pytest.mark.bad_input("loader")
def test_text_file_named_keras(tmp_path):
    p = tmp_path / "fake.keras"
    p.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a valid .keras archive"):
        load_keras_model(p)


@pytest.mark.bad_input("loader")
def test_truncated_keras(tensor_model, tmp_path):
    p = tmp_path / "cut.keras"
    data = tensor_model.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated|not a valid"):
        load_keras_model(p)


@pytest.mark.bad_input("loader")
def test_lambda_refused_in_safe_mode_names_the_flag(lambda_model):
    with pytest.raises(UnsafeModelError, match="--unsafe-load"):
        load_keras_model(lambda_model)


def test_lambda_loads_when_explicitly_unsafe(lambda_model):
    model = load_keras_model(lambda_model, unsafe=True)
    assert any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_run_dir_resolves_to_model(tiny_run):
    model = load_keras_model(tiny_run)
    assert tuple(model.inputs[0].shape)[1:] == (16, 16, 3)


def test_long_messages_are_cut_at_a_word_boundary():
    from train.loading import _first_line

    text = " ".join(f"word{i}" for i in range(100)) + "\nsecond line"
    short = _first_line(text)
    assert len(short) <= 200 and short.endswith("...")
    assert all(w.startswith("word") and w[4:].isdigit() for w in short[:-3].split())
    assert _first_line("short one\nmore") == "short one"


@pytest.mark.bad_input("loader")
def test_custom_objects_spec_errors_are_named():
    from train.errors import CustomObjectsError
    from train.loading import import_custom_objects

    with pytest.raises(CustomObjectsError, match="not module:name"):
        import_custom_objects(["json"])
    with pytest.raises(CustomObjectsError, match="has no attribute 'Nope'"):
        import_custom_objects(["json:Nope"])
    assert import_custom_objects(["json:JSONDecoder"])["JSONDecoder"].__name__ == "JSONDecoder"
