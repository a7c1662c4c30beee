"""docs/coreml-on-linux.md: its example runs, the evaluator stands alone, and its coremltools-like API works.

The evaluator (benchmarks/coreml_reference) is a library of its own: read with `ast`, no file of it
imports train, convert, mobilepack or the rest of benchmarks; run in a fresh process, the doc's
example leaves no module of mobilepack's in sys.modules.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "coreml-on-linux.md"
EVALUATOR = REPO / "benchmarks" / "coreml_reference"
PROJECT = ("train", "convert", "mobilepack", "benchmarks")


def doc_example() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return code


def _dense_chain_bound(model, x: np.ndarray, unit_roundoff: float, extra_roundings: int) -> float:
    """A forward-error bound for Dense -> ReLU -> Dense computed in two orders (Keras', the evaluator's):
    each dot product of length n is within gamma_n * |W| |x| of the exact one (Higham, Accuracy and
    Stability of Numerical Algorithms, 3.1), twice that between two orderings; `extra_roundings` more
    roundings of each value (fp16 weights, inputs, op outputs) add that many unit roundoffs."""
    (w1, b1), (w2, b2) = [layer.get_weights() for layer in model.layers[1:]]
    magnitude = np.abs(w2).T @ (np.abs(w1).T @ np.abs(x[0]) + np.abs(b1)) + np.abs(b2)
    n = w1.shape[0] + w2.shape[0] + 2  # the two dot products and their bias adds
    return float(2 * (n + extra_roundings) * unit_roundoff * magnitude.max())


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The doc's code block, run as written in an empty folder; its variables."""
    folder = tmp_path_factory.mktemp("doc")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        scope: dict = {}
        exec(compile(doc_example(), str(DOC), "exec"), scope)
    finally:
        os.chdir(cwd)
    return folder, scope


def test_the_doc_example_matches_keras_within_float32(example):
    _, scope = example
    model, x, got = scope["model"], scope["x"], scope["got"]
    assert scope["mlmodel"].precision == "cpu" and got.shape == (1, 4) and got.dtype == np.float32
    want = np.asarray(model(x))
    bound = _dense_chain_bound(model, x, np.finfo(np.float32).eps / 2, extra_roundings=0)
    assert 0 < bound < 1e-4 and np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)


def test_float16_compute_units_round_as_the_gpu_and_neural_engine(example, tmp_path):
    """The same model at coremltools' default compute precision (FLOAT16): compute_units ALL, CPU_AND_GPU
    and CPU_AND_NE (as enum, coremltools' enum or name) compute in fp16, CPU_ONLY in float32."""
    import coremltools as ct
    import tensorflow as tf

    from benchmarks.coreml_reference import ComputeUnit, MLModel

    _, scope = example
    model, x = scope["model"], scope["x"]
    traced = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec((1, 8), tf.float32, name="x"))
    path = tmp_path / "tiny16.mlpackage"
    ct.convert([traced], source="tensorflow", convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=(1, 8))],
               compute_precision=ct.precision.FLOAT16).save(str(path))
    want = np.asarray(model(x))
    cpu = MLModel(path, compute_units=ComputeUnit.CPU_ONLY)
    (name,) = [o.name for o in cpu.get_spec().description.output]
    out32 = cpu.predict({"x": x})[name]
    results = {}
    for units in (ComputeUnit.ALL, ct.ComputeUnit.CPU_AND_GPU, "CPU_AND_NE", "all"):
        device = MLModel(path, compute_units=units)
        assert device.precision == "gpu/ane", units
        results[str(units)] = device.predict({"x": x})[name]
    out16 = results[str(ComputeUnit.ALL)]
    assert all(np.array_equal(r, out16) for r in results.values())
    assert MLModel(path, precision="gpu/ane", compute_units="CPU_ONLY").precision == "gpu/ane"  # precision wins
    # every value the fp16 program returns is an fp16 value (its last op is an fp16 op), unlike the CPU's
    assert np.array_equal(out16, out16.astype(np.float16).astype(np.float32))
    assert not np.array_equal(out32, out32.astype(np.float16).astype(np.float32))
    u16 = np.finfo(np.float16).eps / 2
    # fp16 weights and input (2 roundings), each of the 4 ops' outputs rounded (4 more)
    assert np.abs(out16 - want).max() <= _dense_chain_bound(model, x, u16, extra_roundings=6)
    # on the CPU only the stored fp16 weights (and input) are fp16: within float16's error, not float32's
    assert np.abs(out32 - want).max() <= _dense_chain_bound(model, x, u16, extra_roundings=2)


def test_predict_takes_a_list_of_dicts_and_get_spec_is_a_copy(example):
    from benchmarks.coreml_reference import MLModel

    folder, scope = example
    model = MLModel(folder / "tiny.mlpackage", compute_units="CPU_ONLY")
    xs = [scope["x"], -scope["x"]]
    (name,) = [o.name for o in model.get_spec().description.output]
    outs = model.predict([{"x": v} for v in xs])
    assert [o[name].tolist() for o in outs] == [model.predict({"x": v})[name].tolist() for v in xs]
    np.testing.assert_array_equal(model.predict_batch([np.concatenate(xs)])[0], np.concatenate([o[name] for o in outs]))
    spec = model.get_spec()
    spec.description.output[0].name = "changed"
    assert model.get_spec().description.output[0].name == name


@pytest.mark.bad_input("api")
@pytest.mark.parametrize("kwargs,error", [
    ({"compute_units": "GPU_ONLY"}, r"compute_units 'GPU_ONLY': choose from ALL, CPU_AND_GPU, CPU_ONLY, CPU_AND_NE"),
    ({"precision": "fp16"}, r"precision 'fp16': choose from cpu, gpu/ane"),
])
def test_bad_compute_units_or_precision_are_named(example, kwargs, error):
    from benchmarks.coreml_reference import MLModel

    folder, _ = example
    with pytest.raises(ValueError, match=error):
        MLModel(folder / "tiny.mlpackage", **kwargs)


def test_the_doc_example_in_a_fresh_process_imports_nothing_of_mobilepack(tmp_path):
    script = doc_example() + (
        "\nimport json, sys\n"
        "print('MODULES ' + json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{PROJECT!r})))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES ")]
    modules = json.loads(line.removeprefix("MODULES "))
    assert "benchmarks.coreml_reference.model" in modules  # (the check sees the evaluator's own modules)
    outside = [m for m in modules if m != "benchmarks" and not m.startswith("benchmarks.coreml_reference")]
    assert outside == [], outside
    assert "largest difference from Keras:" in proc.stdout


def project_imports(path: Path) -> list[str]:
    """'file:line: module' for each import in `path` of train, convert, mobilepack or benchmarks (absolute,
    or relative past the evaluator's package), at any depth, importlib calls with a literal name included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    depth = len(path.relative_to(EVALUATOR).parts) - 1  # packages below benchmarks/coreml_reference
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > depth:  # `from .. import x` climbs out of coreml_reference
                    names = [f"{'.' * node.level}{node.module or ''}"]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__"):
            names = [node.args[0].value]
        for name in names:
            if name.startswith(".") or name.split(".")[0] in PROJECT:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return found


def test_the_evaluator_imports_nothing_of_the_project():
    files = sorted(EVALUATOR.rglob("*.py"))
    assert len(files) > 15 and EVALUATOR / "model.py" in files
    found = [hit for path in files for hit in project_imports(path)]
    assert not found, "the evaluator must import nothing of mobilepack:\n" + "\n".join(found)


def test_the_import_check_finds_each_kind(tmp_path, monkeypatch):
    """project_imports flags an absolute import, a relative one that leaves the package, and importlib."""
    package = tmp_path / "benchmarks" / "coreml_reference"
    package.mkdir(parents=True)
    bad = package / "bad.py"
    bad.write_text("import numpy\nfrom . import model\nfrom train.errors import MobilepackError\n"
                   "def f():\n    from ..errors import BenchDataError\n    import importlib\n"
                   "    importlib.import_module('convert.coreml')\n")
    monkeypatch.setattr(sys.modules[__name__], "EVALUATOR", package)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert [hit.split(": ")[1] for hit in project_imports(bad)] == ["train.errors", "..errors", "convert.coreml"]
