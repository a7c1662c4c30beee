"""NeuralNetwork (.mlmodel) files run a batch in one pass: the same numbers as one sample at a time."""

import numpy as np
import pytest

from benchmarks.coreml_reference import MLModel
from benchmarks.coreml_reference.batching import CHUNK
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml
from model_zoo import check_batched_run, nn_program


def conv_net():
    """MobileNet's blocks at 16 px: conv, BN, ReLU6, depthwise, pooling, a BN the converter cannot
    fold into a conv (it follows a pool), global pooling, dense, softmax; BN statistics not the defaults."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1)(inp)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(x)))
    x = L.ReLU()(L.DepthwiseConv2D(3, strides=2, padding="same")(x))
    x = L.BatchNormalization()(L.MaxPooling2D(2)(x))
    x = L.AveragePooling2D(2, padding="same")(L.Conv2D(12, 1)(x))
    model = keras.Model(inp, L.Softmax()(L.Dense(10)(L.GlobalAveragePooling2D()(x))))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):  # gamma, beta, mean, variance
            layer.set_weights([rng.uniform(0.5, 2, w.shape).astype(np.float32) if i != 1 else
                               rng.normal(size=w.shape).astype(np.float32) for i, w in enumerate(layer.get_weights())])
    return model


def _mlmodel(model, path, quant="fp32"):
    convert_coreml(ConversionContext(model), "neuralnetwork", quant).save(str(path))
    return path


def _per_sample(runner, x):
    return np.concatenate([runner.predict_one([s])[0] for s in x])


@pytest.fixture(scope="module")
def conv_files(tmp_path_factory):
    """The conv net as fp32 and fp16-weight .mlmodel files, and 2 chunks + 3 inputs (two threads
    at once, the last chunk short)."""
    work, model = tmp_path_factory.mktemp("nnbatch"), conv_net()
    paths = {quant: _mlmodel(model, work / f"conv_{quant}.mlmodel", quant) for quant in ("fp32", "fp16")}
    x = np.random.default_rng(3).uniform(0, 255, (2 * CHUNK + 3, 16, 16, 3)).astype(np.float32)
    return paths, x


@pytest.mark.parametrize("quant,precision", [("fp32", "cpu"), ("fp32", "gpu/ane"), ("fp16", "gpu/ane")])
def test_conv_net_batched_equals_per_sample_bit_for_bit(conv_files, quant, precision):
    paths, x = conv_files
    runner = MLModel(paths[quant], precision=precision)
    kinds = [layer.WhichOneof("layer") for layer in runner.spec.neuralNetwork.layers]
    assert {"convolution", "pooling", "batchnorm", "batchedMatmul", "softmaxND"} <= set(kinds)
    assert any(layer.convolution.nGroups > 1 for layer in runner.spec.neuralNetwork.layers)  # the depthwise conv
    batched = check_batched_run(runner, x)
    assert batched.shape == (len(x), 10)
    if precision == "gpu/ane":  # the fp16 rounding of each layer's output survives batching
        assert np.abs(batched - MLModel(paths[quant], precision="cpu").predict_batch([x])[0]).max() > 1e-5


def test_zoo_batched_equals_per_sample(tmp_path):
    """The zoo's layers: transposes, upsample, pads, slices, tiles and reshapes with a leading 1,
    layer norm's reductions over the last axis, the legacy concat, gelu; in both precisions."""
    from model_zoo import zoo_model

    path = _mlmodel(zoo_model(), tmp_path / "zoo.mlmodel")
    x = np.random.default_rng(5).uniform(0, 255, (CHUNK + 1, 16, 16, 3)).astype(np.float32)
    for precision in ("cpu", "gpu/ane"):
        check_batched_run(MLModel(path, precision=precision), x)


def test_sum_over_the_batch_runs_per_sample(tmp_path):
    """A Keras model that sums over axis 0: batched, each sample would see the others."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="x")
    hidden = L.Dense(8, activation="tanh")(inp)
    mixed = L.Lambda(lambda t: t * keras.ops.sum(t, axis=0, keepdims=True))(hidden)
    path = _mlmodel(keras.Model(inp, L.Dense(3)(mixed)), tmp_path / "sum.mlmodel")
    runner = MLModel(path, precision="cpu")
    assert runner.per_sample_reason.startswith("reduceSum layer ")
    assert "lambda" in runner.per_sample_reason and runner.per_sample_reason.endswith("works across axis 0")
    x = np.random.default_rng(2).normal(size=(CHUNK + 2, 6)).astype(np.float32)
    per_sample = _per_sample(runner, x)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], per_sample)
    runner.per_sample_reason = None  # batched anyway, the numbers change: the refusal is what keeps them right
    assert not np.allclose(runner.predict_batch([x])[0], per_sample, atol=1e-3)


def test_dense_on_a_feature_map_runs_per_sample(tmp_path):
    """Dense on a (4, 4, 12) map reshapes it to (16, 12): the batch's axis is gone."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="image")
    x = L.Dense(5)(L.MaxPooling2D(2)(L.Conv2D(12, 3, padding="same")(inp)))
    runner = MLModel(_mlmodel(keras.Model(inp, L.Flatten()(x)), tmp_path / "dense.mlmodel"), precision="cpu")
    assert runner.per_sample_reason.startswith("reshapeStatic layer ")
    assert "cannot tell where the batch goes" in runner.per_sample_reason
    x = np.random.default_rng(2).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], _per_sample(runner, x))


def test_rank5_mapping_runs_per_sample(conv_files, tmp_path):
    """The legacy rank-5 mapping feeds (Seq, Batch, C, H, W): the batch is not on axis 0."""
    from benchmarks.coreml_reference.model import load_spec

    spec, _ = load_spec(conv_files[0]["fp32"])
    assert spec.description.input[0].type.WhichOneof("Type") == "multiArrayType"
    spec.neuralNetwork.arrayInputShapeMapping = 0  # RANK5_ARRAY_MAPPING
    (tmp_path / "rank5.mlmodel").write_bytes(spec.SerializeToString())
    assert "rank-5" in MLModel(tmp_path / "rank5.mlmodel", precision="cpu").per_sample_reason


@pytest.mark.parametrize("build,reason", [
    pytest.param(lambda b, x, y: b.add_reduce_sum("r", x, y, axes=[0], keepdims=True), "across axis 0", id="reduce-axis-0"),
    pytest.param(lambda b, x, y: b.add_transpose("t", [1, 0, 2], x, y), "moves axis 0", id="transpose-axis-0"),
    pytest.param(lambda b, x, y: b.add_reshape_static("r", x, y, [2, 4]), "where the batch goes", id="reshape-drops-batch"),
    pytest.param(lambda b, x, y: b.add_softmax_nd("s", x, y, axis=-3), "across axis 0", id="softmax-axis-0"),
    pytest.param(lambda b, x, y: b.add_concat_nd("c", [x, x], y, axis=0), "along axis 0", id="concat-axis-0"),
    pytest.param(lambda b, x, y: (b.add_load_constant_nd("k", "k", np.ones((3, 2, 4), np.float32), [3, 2, 4]),
                                  b.add_add_broadcastable("a", [x, "k"], y)), "spans axis 0", id="constant-spans-axis-0"),
    pytest.param(lambda b, x, y: b.add_expand_dims("e", x, y, axes=[-4]), "before axis 0", id="expand-before-axis-0"),
])
def test_layer_that_mixes_samples_runs_per_sample(tmp_path, build, reason):
    """A layer that would mix samples (or move the batch) keeps the whole model per sample, so a
    batch gives what each sample alone gives."""
    runner = nn_program(tmp_path, build)
    assert reason in runner.per_sample_reason
    x = np.random.default_rng(0).normal(size=(3, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], _per_sample(runner, x))


@pytest.mark.parametrize("build", [
    pytest.param(lambda b, x, y: b.add_softmax_nd("s", x, y, axis=-1), id="softmax-last-axis"),
    pytest.param(lambda b, x, y: b.add_reshape_static("r", x, y, [1, 8]), id="reshape-leading-1"),
    pytest.param(lambda b, x, y: b.add_expand_dims("e", x, y, axes=[-1]), id="expand-last"),
])
def test_layer_that_keeps_samples_apart_takes_the_batch(tmp_path, build):
    runner = nn_program(tmp_path, build)
    assert runner.per_sample_reason is None
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    np.testing.assert_array_equal(runner.predict_batch([x])[0], _per_sample(runner, x))
