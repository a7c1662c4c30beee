"""The Core ML evaluator runs a batch in one pass: the same numbers as one sample at a time."""

import numpy as np
import pytest

from benchmarks.coreml_reference import MLModel
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml
from model_zoo import check_batched_run, mil_program


@pytest.fixture(scope="module")
def zoo_packages(tmp_path_factory):
    """The test zoo (every building block) as fp32 and fp16 ML Programs, and two chunks and 3
    inputs, so two threads run at once and the last chunk is short."""
    from benchmarks.coreml_reference.batching import CHUNK

    from model_zoo import zoo_model

    model, work = zoo_model(), tmp_path_factory.mktemp("batch")
    paths = {}
    for quant in ("fp32", "fp16"):
        paths[quant] = work / f"zoo_{quant}.mlpackage"
        convert_coreml(ConversionContext(model), "mlprogram", quant).save(str(paths[quant]))
    x = np.random.default_rng(3).uniform(0, 255, (2 * CHUNK + 3, 16, 16, 3)).astype(np.float32)
    return paths, x


@pytest.mark.parametrize("quant,precision", [("fp32", "cpu"), ("fp16", "cpu"), ("fp16", "gpu/ane")])
def test_batched_run_equals_per_sample_bit_for_bit(zoo_packages, quant, precision):
    """Exact, not within a tolerance: each kernel computes every sample with the same calls in the
    same order, fp16 rounding is per element, and the dense layers run a row at a time."""
    paths, x = zoo_packages
    runner = MLModel(paths[quant], precision=precision)
    # the zoo's reshapes, slices, tiles, concats all take a batch
    assert check_batched_run(runner, x).shape == (len(x), 10)


def test_fp16_rounding_survives_batching(zoo_packages):
    """gpu/ane still rounds every fp16 op when batched: it differs from cpu as per sample it does."""
    paths, x = zoo_packages
    device = MLModel(paths["fp16"], precision="gpu/ane").predict_batch([x])[0]
    cpu = MLModel(paths["fp16"], precision="cpu").predict_batch([x])[0]
    assert np.abs(device - cpu).max() > 1e-5


@pytest.mark.parametrize("build,reason", [
    pytest.param(lambda mb, x: mb.reduce_sum(x=x, axes=[0], keep_dims=True), "across axis 0", id="reduce-axis-0"),
    pytest.param(lambda mb, x: mb.transpose(x=x, perm=[1, 0, 2]), "moves axis 0", id="transpose-axis-0"),
    pytest.param(lambda mb, x: mb.reshape(x=x, shape=[2, 4]), "where the batch goes", id="reshape-drops-batch"),
    pytest.param(lambda mb, x: mb.softmax(x=x, axis=-3), "across axis 0", id="softmax-axis-0"),
])
def test_program_that_mixes_samples_runs_per_sample(tmp_path, build, reason):
    """An op that would mix samples (or move the batch) keeps the whole program per sample, so a
    batch gives what each sample alone gives; batched, these would be wrong or fail."""
    runner = mil_program(tmp_path, build)
    assert reason in runner.per_sample_reason
    x = np.random.default_rng(0).normal(size=(3, 2, 4)).astype(np.float32)
    out = runner.predict_batch([x])[0]
    np.testing.assert_array_equal(out, np.concatenate([runner.predict_one([s])[0] for s in x]))


def test_reshape_with_a_leading_1_takes_the_batch(tmp_path):
    runner = mil_program(tmp_path, lambda mb, x: mb.reshape(x=mb.add(x=x, y=1.0), shape=[1, 8]))
    assert runner.per_sample_reason is None
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], x.reshape(3, 8) + 1)


def test_image_classifier_takes_a_batch(tiny_run, tmp_path):
    """The bench's own artifacts, ML Program and NeuralNetwork: an image input (with the
    NeuralNetwork's scaler) and labels per row."""
    from convert.api import ConvertConfig, convert

    convert(tiny_run, tmp_path / "dist", ConvertConfig(targets=("coreml",), coreml_formats=("mlprogram", "neuralnetwork"),
                                                       quantizations=("fp32",)), log=lambda m: None)
    paths = sorted((tmp_path / "dist").glob("*.ml*"))
    assert [p.suffix for p in paths] == [".mlpackage", ".mlmodel"]
    for path in paths:
        runner = MLModel(path, precision="cpu")
        assert runner.per_sample_reason is None and runner.probabilities, path.name
        image = runner.inputs[0].type.imageType
        x = np.random.default_rng(4).uniform(0, 255, (5, image.height, image.width, 3)).astype(np.float32)
        batched = runner.predict_batch([x])[0]
        np.testing.assert_array_equal(batched, np.concatenate([runner.predict_one([s])[0] for s in x]))
        feed = runner._feed
        out = runner.program.run({runner.inputs[0].name: np.concatenate([feed(runner.inputs[0], s) for s in x])})
        labels = [o.name for o in runner.spec.description.output if o.name != runner.probabilities]
        if path.suffix == ".mlpackage":  # the classify op gives each row's label
            assert list(out[labels[0]]) == [runner.program.run({runner.inputs[0].name: feed(runner.inputs[0], s)})[labels[0]]
                                            for s in x]
        else:  # a NeuralNetwork classifier leaves the label to Core ML; its image scaler took the batch
            assert labels[0] not in out and getattr(runner.spec, runner.spec.WhichOneof("Type")).preprocessing


def test_broadcast_that_would_move_the_batch_runs_per_sample(tmp_path):
    """x (1, 4) + a constant (3, 1, 4) is (3, 1, 4) per sample; batched it would be (3, N, 4)."""
    y = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
    runner = mil_program(tmp_path, lambda mb, x: mb.add(x=x, y=y), shape=(1, 4))
    assert "broadcasting" in runner.per_sample_reason
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], np.concatenate([x[i] + y for i in range(2)]))


@pytest.mark.parametrize("quant,precision", [("fp32", "cpu"), ("fp16", "gpu/ane")])
def test_conv_with_fused_activation_gives_the_unfused_bits(zoo_packages, quant, precision):
    """The zoo's relu and relu6 after a conv (and a depthwise conv) run inside the conv; the outputs
    are those of the program with every op apart (calibration's observable program)."""
    from benchmarks.coreml_reference.mil import MILProgram
    from benchmarks.coreml_reference.model import load_spec
    from benchmarks.coreml_reference.values import BlobFile

    paths, x = zoo_packages
    runner = MLModel(paths[quant], precision=precision)
    fused = [st for st in runner.program.steps if "post" in st.consts]
    assert len(fused) >= 2  # the zoo's conv + relu and depthwise + relu6
    apart = MILProgram(runner.spec, BlobFile(load_spec(paths[quant])[1]), precision=precision,
                       observable=True)
    assert not [st for st in apart.steps if "post" in st.consts]
    name = runner.inputs[0].name
    for sample in x[:3]:
        feed = runner._feed(runner.inputs[0], sample)
        a, b = runner.program.run({name: feed}), apart.run({name: feed.copy()})
        for out in runner.program.outputs:
            assert a[out].tobytes() == b[out].tobytes()
