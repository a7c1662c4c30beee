"""Every file mobilepack reads back goes through one loader policy (train/documents.py).

Each loader is fed real documents (written by `train`, `convert`, `bench` and the repository's app
marker) that are truncated, mutated and of the wrong type. A loader either loads the document (a
mutation may keep it valid) or raises DocumentError in one line naming the path and what to run
to regenerate it; anything else (JSONDecodeError, KeyError, TypeError, ...) fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.gating.regression import load_baseline
from benchmarks.report.write import load_report
from convert.manifest import load_manifest
from mobilepack.ship import app_assets
from train.data import load_split
from train.errors import DocumentError
from train.preprocessing import Preprocessing
from train.tensors import load_tensor_file
from train.trainer import read_labels, read_train_config

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# kind -> (file in the work folder, the loader mobilepack uses for it, what the message tells to run)
KINDS = {
    "manifest": ("dist/manifest.json", lambda p: load_manifest(p.parent), "mobilepack convert"),
    "report": ("dist/report.json", lambda p: load_report(p, "re-run `mobilepack bench dist`"), "mobilepack bench"),
    "baseline": ("old/report.json", load_baseline, "mobilepack bench"),
    "split": ("run/split.json", load_split, "mobilepack train"),
    "preprocessing": ("run/preprocessing.json", Preprocessing.load, "mobilepack train"),
    "train_config": ("run/train_config.json", lambda p: read_train_config(p.parent), "mobilepack train"),
    "marker": ("app/mobilepack-app.json", lambda p: app_assets(p.parent, "android"), "git checkout"),
    "labels": ("run/labels.txt", lambda p: read_labels(p, 10), "mobilepack train"),
    "npz": ("calib.npz", lambda p: load_tensor_file(p, [(16, 16, 3)], ["image"]), "np.save"),
}
JSON_KINDS = [k for k in KINDS if k not in ("labels", "npz")]
FOLDER = object()  # write a folder where the file should be


@pytest.fixture(scope="module")
def originals(tiny_run, tiny_benched, tmp_path_factory) -> dict[str, bytes]:
    """Each kind's valid document, as the real code wrote it."""
    from train.data import load_dataset

    prep = Preprocessing.load(tiny_run / "preprocessing.json")
    npz = tmp_path_factory.mktemp("npz") / "calib.npz"
    np.savez(npz, x=prep.apply_batch(load_dataset("digits", lambda m: None).images[:8]))
    sources = {"manifest": tiny_benched / "manifest.json", "report": tiny_benched / "report.json",
               "baseline": tiny_benched / "report.json", "split": tiny_run / "split.json",
               "preprocessing": tiny_run / "preprocessing.json", "train_config": tiny_run / "train_config.json",
               "marker": ROOT / "android_demo" / "mobilepack-app.json", "labels": tiny_run / "labels.txt",
               "npz": npz}
    return Originals({kind: path.read_bytes() for kind, path in sources.items()})


class Originals(dict):
    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example: not 200 kB of documents
        return f"<the real {', '.join(self)}>"


@pytest.fixture(scope="module")
def work(originals, tmp_path_factory) -> Path:
    """Where each example writes its document, at the place its loader expects it."""
    root = tmp_path_factory.mktemp("work")
    for rel, _, _ in KINDS.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    return root


def outcome(work: Path, kind: str, data) -> DocumentError | None:
    """Load `data` (bytes, None: no file, FOLDER) as `kind`: None when it loads, else the DocumentError.

    Any other exception propagates and fails the test.
    """
    rel, load, hint = KINDS[kind]
    path = work / rel
    if path.is_dir():
        path.rmdir()
    path.unlink(missing_ok=True)
    if data is FOLDER:
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    try:
        load(path)
    except DocumentError as exc:
        message = str(exc)
        assert str(path) in message and hint in message, message
        assert "\n" not in message and "Traceback" not in message, message
        return exc
    return None


# --- property-based: truncated, mutated, wrong-typed ---

def value_paths(doc, prefix=()) -> list[tuple]:
    """Key paths to every value; of an array only its first and last items (the report holds long sample lists)."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in [prefix + (k,), *value_paths(v, prefix + (k,))]]
    if isinstance(doc, list) and doc:
        return [p for i in sorted({0, len(doc) - 1}) for p in [prefix + (i,), *value_paths(doc[i], prefix + (i,))]]
    return []


def parent_of(doc, path: tuple):
    for key in path[:-1]:
        doc = doc[key]
    return doc


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(), st.text(max_size=8))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=6)
TYPE_OF = {type(None): "null", bool: "bool", int: "number", float: "number", str: "string", list: "array",
           dict: "object"}


@pytest.mark.parametrize("kind", list(KINDS))
@FUZZ
@given(data=st.data())
def test_truncated_documents_load_or_name_the_problem(kind, data, originals, work):
    original = originals[kind]
    cut = data.draw(st.integers(0, len(original) - 1), label="cut at byte")
    error = outcome(work, kind, original[:cut])
    if kind in JSON_KINDS and original[cut:].strip():  # a JSON document cut before its end is never whole
        assert error is not None


@pytest.mark.parametrize("kind", list(KINDS))
@FUZZ
@given(data=st.data())
def test_flipped_bytes_load_or_name_the_problem(kind, data, originals, work):
    damaged = bytearray(originals[kind])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(damaged) - 1), st.integers(1, 255)), min_size=1,
                               max_size=4), label="flips (offset, xor)")
    for offset, mask in flips:
        damaged[offset] ^= mask
    outcome(work, kind, bytes(damaged))


@pytest.mark.parametrize("kind", JSON_KINDS)
@FUZZ
@given(data=st.data())
def test_a_deleted_key_at_any_depth_loads_or_is_named(kind, data, originals, work):
    doc = json.loads(originals[kind])
    path = data.draw(st.sampled_from([p for p in value_paths(doc) if isinstance(p[-1], str)]), label="key path")
    del parent_of(doc, path)[path[-1]]
    error = outcome(work, kind, json.dumps(doc).encode())
    if error is not None and len(path) == 1:  # a top-level key the loader needs is named
        assert path[0] in str(error), str(error)


@pytest.mark.parametrize("kind", JSON_KINDS)
@FUZZ
@given(data=st.data())
def test_a_value_of_another_type_loads_or_is_named(kind, data, originals, work):
    doc = json.loads(originals[kind])
    path = data.draw(st.sampled_from(value_paths(doc)), label="key path")
    old = parent_of(doc, path)[path[-1]]
    new = data.draw(JSON_VALUES.filter(lambda v: TYPE_OF[type(v)] != TYPE_OF[type(old)]), label="new value")
    parent_of(doc, path)[path[-1]] = new
    outcome(work, kind, json.dumps(doc).encode())


@pytest.mark.parametrize("kind", JSON_KINDS)
@settings(FUZZ, max_examples=20)
@given(top=JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_a_document_that_is_not_an_object_is_named(kind, top, work):
    error = outcome(work, kind, json.dumps(top).encode())
    assert error is not None and "expected an object" in str(error), error


@pytest.mark.parametrize("kind", ["labels", "npz"])
@settings(FUZZ, max_examples=30)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_as_labels_or_arrays_load_or_are_named(kind, data, work):
    outcome(work, kind, data)


# --- one explicit case per distinct fault and document kind ---


def drop(*path):
    return lambda doc: parent_of(doc, path).pop(path[-1])


def put(*path, value):
    return lambda doc: parent_of(doc, path).__setitem__(path[-1], value)


def npy_bytes(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def text_member_zip(original: bytes) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", b"just text")
    return buf.getvalue()


COMMON = [("missing", lambda b: None, "not found"), ("folder", lambda b: FOLDER, "it is a folder"),
          ("empty", lambda b: b"", "empty file"), ("not-json", lambda b: b"{not json", "not valid JSON"),
          ("truncated", lambda b: b[: len(b) // 2], "not valid JSON"),
          ("not-utf8", lambda b: b'{"a": "\xff"}', "not UTF-8")]
SPECIFIC = {
    "manifest": [("missing-key", drop("artifacts", 0, "sha256"), "artifacts[0]: missing field(s) sha256"),
                 ("wrong-type", put("artifacts", 0, "size_bytes", value="big"),
                  "artifacts[0].size_bytes is a string, expected an integer"),
                 ("schema-version", put("schema_version", value=7), "schema_version 7"),
                 ("preprocessing-missing-key", drop("preprocessing", "channel_order"),
                  "preprocessing: missing field(s) channel_order"),
                 ("unknown-target", put("artifacts", 0, "target", value="tpu"), "neither tflite nor coreml"),
                 ("file-outside-dist", put("artifacts", 0, "file", value="../../etc/passwd"),
                  "artifacts[0].file '../../etc/passwd' is not a file name inside the dist"),
                 ("absolute-file", put("artifacts", 1, "file", value="/etc/passwd"), "is not a file name inside"),
                 ("reference-outside-dist", put("source", "model_file", value="../model.keras"),
                  "source.model_file '../model.keras' is not a file name inside the dist")],
    "report": [("missing-key", drop("artifacts", 0, "sha256"), "artifacts[0]: missing field(s) sha256"),
               ("wrong-type", put("recommended", value=[]), "recommended is an array, expected an object"),
               ("schema-version", put("schema_version", value=3), "schema_version 3, this mobilepack writes 4"),
               ("recommends-no-row", put("recommended", "android", value="model_nope"), "recommended.android names"),
               ("no-repetitions", put("artifacts", 0, "latency_ms", 0, "repetitions", value=[]), "expected at least 1"),
               ("zero-size", put("artifacts", 0, "size_bytes", value=0), "size_bytes is 0, expected at least 1")],
    "baseline": [("missing-key", drop("machine"), "missing field(s) machine"),
                 ("schema-version", put("schema_version", value=0), "--baseline"),
                 ("wrong-type", put("dataset", "count", value="359"), "dataset.count is a string")],
    "split": [("missing-key", drop("test"), "missing field(s) test"),
              ("wrong-type", put("train", value="0,1"), "train is a string, expected an array"),
              ("schema-version", put("schema_version", value=2), "schema_version 2"),
              ("unknown-source", put("source", "kind", value="s3"), "neither 'digits' nor 'folder'"),
              ("folder-without-root", put("source", value={"kind": "folder"}), "missing field(s) root")],
    "preprocessing": [("missing-key", drop("resize"), "missing field(s) resize"),
                      ("wrong-type", put("image_size", value=[16, "16"]), "image_size[1] is a string"),
                      ("schema-version", put("schema_version", value=99), "schema_version 99"),
                      ("bad-value", put("resize", value="lanczos9"), "resize 'lanczos9' is not one of"),
                      ("zero-std", put("std", value=[0, 1, 1]), "holds a 0")],
    "train_config": [("missing-key", drop("epochs"), "missing field(s) epochs"),
                     ("wrong-type", put("img_size", value="16"), "img_size is a string, expected an integer")],
    "marker": [("missing-key", drop("assets"), "missing field(s) assets"),
               ("wrong-type", put("assets", value=5), "assets is an integer, expected a string"),
               ("assets-outside-app", put("assets", value="../.."), "not a folder inside the app"),
               ("unknown-platform", put("platform", value="windows"), "neither android nor ios")],
}


def edited(change):
    def edit(original: bytes) -> bytes:
        doc = json.loads(original)
        change(doc)
        return json.dumps(doc).encode()
    return edit


LOADER_CASES = [
    *(pytest.param(kind, edit, fragment, id=f"{kind}-{name}") for kind in JSON_KINDS for name, edit, fragment in COMMON
      if not (kind == "marker" and name in ("missing", "folder"))),  # ship's own "not a demo app" (test_ship.py)
    *(pytest.param(kind, edited(change), fragment, id=f"{kind}-{name}")
      for kind, cases in SPECIFIC.items() for name, change, fragment in cases),
    pytest.param("labels", lambda b: None, "not found", id="labels-missing"),
    pytest.param("labels", lambda b: FOLDER, "it is a folder", id="labels-folder"),
    pytest.param("labels", lambda b: b"\n \n", "holds no labels", id="labels-empty"),
    pytest.param("labels", lambda b: b"0\n\xff\n", "not UTF-8", id="labels-not-utf8"),
    pytest.param("labels", lambda b: b"a\nb\n", "2 labels, but the model's output has 10 classes", id="labels-count"),
    pytest.param("npz", lambda b: None, "not found", id="npz-missing"),
    pytest.param("npz", lambda b: b"hello world", "not a .npy/.npz file", id="npz-not-a-zip"),
    pytest.param("npz", lambda b: b[: len(b) // 2], "damaged or truncated", id="npz-truncated"),
    pytest.param("npz", lambda b: npz_bytes(x=np.array([{"a": 1}] * 2, dtype=object)), "holds Python objects",
                 id="npz-object-array"),
    pytest.param("npz", lambda b: npy_bytes(np.array([{"a": 1}], dtype=object)), "holds Python objects",
                 id="npy-object-array"),
    pytest.param("npz", lambda b: npz_bytes(y=np.zeros(3)), "needs an array 'x'", id="npz-missing-x"),
    pytest.param("npz", lambda b: npz_bytes(x=np.full((2, 16, 16, 3), "a")), "not numbers", id="npz-strings"),
    pytest.param("npz", lambda b: npz_bytes(x=np.zeros((2, 8, 8, 3))), "the model takes (16, 16, 3)",
                 id="npz-wrong-shape"),
    pytest.param("npz", lambda b: npy_bytes(np.float32(1.0)), "has samples of shape ()", id="npy-0d"),
    pytest.param("npz", text_member_zip, "is not a .npy array", id="npz-text-member"),
]


@pytest.mark.bad_input("loader")
@pytest.mark.parametrize("kind,edit,fragment", LOADER_CASES)
def test_each_damaged_document_is_one_named_line(kind, edit, fragment, originals, work):
    error = outcome(work, kind, edit(originals[kind]))
    assert error is not None, f"{kind}: loaded a damaged document"
    assert fragment in str(error), str(error)


def test_the_real_documents_load(originals, work):
    """The fuzzing starts from documents every loader accepts (else every case would pass by refusal)."""
    for kind, data in originals.items():
        assert outcome(work, kind, data) is None, kind
