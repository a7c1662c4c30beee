"""One seeded Keras model holding every building block the Core ML evaluator must run, for its tests."""

import keras
import numpy as np
from keras import layers as L


def zoo_model(size=16, seed=0):
    """Conv, depthwise, separable, grouped, transpose conv, dense, BN, LN, every activation (exact and tanh GELU),
    merges, pools, reshapes."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = L.Rescaling(1/255.)(inp)
    norm = L.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.04, 0.05, 0.06])
    x = norm(x)
    x = L.Resizing(size + 4, size + 4, interpolation="bilinear")(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(((2, 1), (1, 2)))(x)
    a = L.Conv2D(8, 3, padding="same")(x)
    a = L.BatchNormalization()(a)
    a = L.ReLU()(a)
    b = L.DepthwiseConv2D(3, padding="same")(x)
    b = L.ReLU(max_value=6.0)(b)
    b = L.Conv2D(8, 1)(b)
    c = L.SeparableConv2D(8, 3, padding="same", activation="swish")(x)
    x = L.Add()([a, b])
    x = L.Subtract()([x, c])
    x = L.Multiply()([x, L.Activation("sigmoid")(c)])
    x = L.LeakyReLU(negative_slope=0.1)(x)
    x = L.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.2))(x)
    x = L.ELU()(x)
    x = L.Concatenate()([x, L.Activation("hard_sigmoid")(a), L.Activation("hard_swish")(b)])
    x = L.Activation("tanh")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.UpSampling2D(2)(x)
    x = L.LayerNormalization()(x)
    x = L.Activation(lambda t: keras.activations.gelu(t, approximate=True))(x)
    x = L.Activation("gelu")(x)  # exact, erf-based: TF's Erfc, converted by convert/coreml/tf_ops.py
    x = L.Conv2D(8, 3, padding="same", groups=2)(x)  # grouped: Keras runs it through an XLA-compiled function
    x = L.Dropout(0.3)(x)
    p = L.GlobalAveragePooling2D()(x)
    q = L.GlobalMaxPooling2D()(x)
    r = L.Permute((3, 1, 2))(x)
    r = L.Reshape((8, -1))(r)
    r = L.Flatten()(r)
    r = L.Dense(16)(r)
    x = L.Concatenate()([p, q, r])
    x = L.Dense(10)(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out)


def mil_program(tmp_path, build, shape=(1, 2, 4)):
    """The evaluator's MLModel of an ML Program built with coremltools' MIL builder: build(mb, x) returns its output."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from benchmarks.coreml_reference import MLModel

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)])
    def prog(x):
        return build(mb, x)

    path = tmp_path / "prog.mlpackage"
    ct.convert(prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32).save(str(path))
    return MLModel(path, precision="cpu")


def nn_program(tmp_path, build, shape=(1, 2, 4)):
    """The evaluator's MLModel of a NeuralNetwork built with coremltools' builder (exact rank mapping, as the
    converter writes): build(builder, "x", "y") adds the layers from input x to output y."""
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    from benchmarks.coreml_reference import MLModel

    builder = NeuralNetworkBuilder([("x", datatypes.Array(*shape))], [("y", None)], disable_rank5_shape_mapping=True)
    build(builder, "x", "y")
    path = tmp_path / "prog.mlmodel"
    ct.utils.save_spec(builder.spec, str(path))
    return MLModel(path, precision="cpu")


def check_batched_run(runner, x):
    """A batch in one pass gives each sample's own numbers, bit for bit, without falling back; returns them."""
    assert runner.per_sample_reason is None
    batched = runner.predict_batch([x])[0]
    assert runner.per_sample_reason is None  # ran batched, did not fall back
    np.testing.assert_array_equal(batched, np.concatenate([runner.predict_one([s])[0] for s in x]))
    assert len({row.tobytes() for row in batched}) == len(x)  # the samples did not collapse into one
    return batched
