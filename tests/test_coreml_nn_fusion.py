"""A NeuralNetwork conv runs the activation layers after it in its post hook: the same bits as the
layers one by one (nn_fusion.py), and never when another reader needs an intermediate output."""

import numpy as np
import pytest

from benchmarks.coreml_reference import MLModel
from benchmarks.coreml_reference.nn_program import NeuralNetworkProgram
from benchmarks.coreml_reference.nn_batching import nn_batch_plan
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml
from model_zoo import nn_program


def relu6_net():
    """ReLU6 after a conv and after a depthwise conv (the converter lowers each to ReLU, linear,
    threshold, linear), a zero padding layer before the depthwise conv, a leaky ReLU, and the last
    feature map as the output (its bits are checked directly, not through a softmax)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3), name="image")
    big = keras.initializers.RandomNormal(stddev=1.5)  # its outputs reach 6 too
    x = L.ReLU(6.0)(L.Conv2D(8, 3, padding="same")(L.Rescaling(1 / 10.0)(inp)))
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)  # as MobileNetV2 pads before a stride-2 depthwise conv
    x = L.ReLU(6.0)(L.DepthwiseConv2D(3, strides=2, depthwise_initializer=big)(x))
    x = L.LeakyReLU(negative_slope=0.1)(L.Conv2D(8, 3)(x))
    out = L.ReLU(6.0)(L.Conv2D(6, 1)(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def relu6_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("nnfuse") / "relu6.mlmodel"
    convert_coreml(ConversionContext(relu6_net()), "neuralnetwork", "fp32").save(str(path))
    x = np.random.default_rng(3).uniform(0, 255, (5, 12, 12, 3)).astype(np.float32)
    return path, x


def _unfused(runner):
    """The same runner with every layer run on its own (and batched the same way)."""
    nn = runner.spec.neuralNetwork
    fused = runner.program
    runner.program = NeuralNetworkProgram(nn, precision=fused.precision, outputs=tuple(o.name for o in runner.spec.description.output),
                                          fuse=False)
    runner.program.adapt(nn_batch_plan(nn, runner.inputs))
    return runner


@pytest.mark.parametrize("precision", ["cpu", "gpu/ane"])
def test_fused_chains_give_the_layers_bits(relu6_file, precision):
    path, x = relu6_file
    fused = MLModel(path, precision=precision)
    layers = fused.spec.neuralNetwork.layers
    taken = [layers[i] for i in sorted(fused.program.taken)]
    # the ReLU6 chains of four layers after the conv and the depthwise conv, the padding and the
    # leaky ReLU; the last ReLU6 follows a transpose to NHWC (the model's output) and runs layer by layer
    assert len(taken) == 10 and sum(layer.WhichOneof("layer") == "padding" for layer in taken) == 1
    assert sum(layer.WhichOneof("layer") == "unary" for layer in taken) == 2
    assert any(layer.convolution.nGroups > 1 for layer in layers if layer.WhichOneof("layer") == "convolution")
    plain = _unfused(MLModel(path, precision=precision))
    assert not plain.program.taken
    got, want = fused.predict_batch([x])[0], plain.predict_batch([x])[0]
    assert got.tobytes() == want.tobytes()
    assert fused.predict_one([x[0]])[0].tobytes() == plain.predict_one([x[0]])[0].tobytes()
    # the fused chains clip at both ends and pass values between (seen in the unfused layers' outputs)
    names = [layer.output[0] for layer in layers]
    seen = NeuralNetworkProgram(fused.spec.neuralNetwork, precision=fused.program.precision, outputs=tuple(names), fuse=False)
    maps = seen.run({"image": np.concatenate([fused._feed(fused.inputs[0], s) for s in x])})
    for layer in taken:
        if layer.name.endswith("Relu6"):
            y = maps[layer.output[0]]
            assert (y == 0).any() and (y == 6).any() and ((y > 0) & (y < 6)).mean() > 0.1
    if precision == "gpu/ane":  # fp16 rounding ran after each layer: every value is an fp16 value
        assert np.array_equal(want, want.astype(np.float16).astype(np.float32))


def _conv(builder, name, source, out):
    rng = np.random.default_rng(len(name))
    builder.add_convolution(name, kernel_channels=2, output_channels=2, height=3, width=3, stride_height=1,
                            stride_width=1, border_mode="same", groups=1, W=rng.normal(size=(3, 3, 2, 2)),
                            b=rng.normal(size=2), has_bias=True, input_name=source, output_name=out)


def _read_twice(builder, x, y):
    """conv -> relu -> linear, the relu's output also read by an add."""
    _conv(builder, "conv", x, "c")
    builder.add_activation("relu", "RELU", "c", "r")
    builder.add_activation("lin", "LINEAR", "r", "l", params=[-1.0, 6.0])
    builder.add_elementwise("add", ["r", "l"], y, "ADD")


def _intermediate_output(builder, x, y):
    """conv -> relu -> linear, the relu's output a model output too."""
    _conv(builder, "conv", x, "c")
    builder.add_activation("relu", "RELU", "c", "r")
    builder.add_activation("lin", "LINEAR", "r", y, params=[-1.0, 6.0])
    builder.spec.description.output.add().name = "r"
    builder.spec.description.output[-1].type.multiArrayType.dataType = builder.spec.description.output[0].type.multiArrayType.dataType


@pytest.mark.parametrize("build", [_read_twice, _intermediate_output])
def test_a_chain_read_elsewhere_stops_before_that_output(tmp_path, build):
    runner = nn_program(tmp_path, build, shape=(1, 2, 5, 5))
    layers = [layer.name for layer in runner.spec.neuralNetwork.layers]
    # the conv takes the relu (its output stays a stored tensor), not the linear after it
    assert [layers[i] for i in runner.program.taken] == ["relu"]
    x = np.random.default_rng(0).normal(size=(3, 1, 2, 5, 5)).astype(np.float32) * 3
    got = runner.predict_batch([x[:, 0]])
    want = _unfused(nn_program(tmp_path, build, shape=(1, 2, 5, 5))).predict_batch([x[:, 0]])
    assert len(got) == len(runner.spec.description.output) and all(g.tobytes() == w.tobytes() for g, w in zip(got, want))
    assert (got[0] != 0).all()


SPECIAL = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0xFF812345,
                    1, 0x80000001, 0x00800000, 0x33800000, 0xB3800000], np.uint32).view(np.float32)


@pytest.mark.parametrize("precision", ["cpu", "gpu/ane"])
def test_relu6_in_one_step_equals_its_four_layers_on_special_values(relu6_file, precision):
    """The converter's ReLU6 (-max(-relu(x), -6)) as one step: NaN payloads, -0.0, infinities,
    subnormals, fp16 overflow and values next to 0 and 6 keep the layers' bits."""
    from benchmarks.coreml_reference.kernels import round_fp16 as to_fp16
    from benchmarks.coreml_reference.nn import LAYERS
    from benchmarks.coreml_reference.nn_fusion import PIECE, _links, _run_all

    program = MLModel(relu6_file[0], precision="cpu").program
    first = min(program.taken)  # the ReLU of the first conv's ReLU6
    chain = [(kind, getattr(layer, kind)) for kind, layer in program.layers[first:first + 4]]
    assert _links(chain, precision)[-1].__name__ == "_relu6"
    rounded = precision == "gpu/ane"
    near = np.array([0, 6, 65504, 65520, 1e-8], np.float32)
    x = np.concatenate([SPECIAL, near, -near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, -np.inf),
                        np.random.default_rng(0).normal(scale=8, size=PIECE + 7).astype(np.float32)])
    with np.errstate(all="ignore"):
        want = to_fp16(x) if rounded else x
        for kind, params in chain:
            want = LAYERS[kind][1](params, want)
            want = to_fp16(want) if rounded else want
        got = x.copy()
        _run_all(_links(chain, precision))(got)
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()
