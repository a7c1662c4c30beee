"""Small seeded Keras models of the architectures users bring, with random weights and sample data.

The suite converts each to every default variant of both targets and checks parity
(tests/test_zoo_*.py), and docs/models.md's support table is generated from the same run
(docs/models.py). Widths and sizes are tiny so the whole zoo fits the suite's time; the layer
patterns are those of the real families (MBConv with squeeze-excite, hard-swish, dense blocks,
ConvNeXt's depthwise 7x7 + LayerNorm + exact GELU, a ViT encoder, ResNeXt's grouped conv, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

IMAGE = 32  # pixels per side of the vision models
STEPS = 5  # time steps of the sequence models (unrolled: conversion time grows with them)
TOKENS, VOCAB = 6, 50  # token ids per sample, vocabulary size


@dataclass(frozen=True)
class Architecture:
    name: str
    family: str  # vision, sequence, text, tabular, multi
    what: str  # one line for the support table
    build: Callable[[], object]


def _seed(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras, keras.layers


def efficientnet():
    """MBConv blocks: expand 1x1, depthwise, squeeze-excite, project, residual; swish."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1)(inp)
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = L.Activation("swish")(L.BatchNormalization()(x))
    for filters, stride in ((16, 1), (24, 2)):
        x = _mbconv(L, x, filters, stride, ("swish", "sigmoid"))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="efficientnet")


def _mbconv(L, x, filters, stride, activations, expand=4):
    """Expand, depthwise, squeeze-excite, project; activations: (the block's, the excite gate's)."""
    (act, gate), inp, c = activations, x, x.shape[-1]
    x = L.Activation(act)(L.BatchNormalization()(L.Conv2D(c * expand, 1, use_bias=False)(x)))
    x = L.Activation(act)(L.BatchNormalization()(L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)))
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(max(c // 4, 4), 1, activation=act)(s)
    x = L.Multiply()([x, L.Conv2D(c * expand, 1, activation=gate)(s)])
    x = L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x))
    return L.Add()([inp, x]) if stride == 1 and c == filters else x


def mobilenetv3():
    """MobileNetV3 blocks: hard-swish, squeeze-excite with hard-sigmoid, ReLU6."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Activation("hard_swish")(L.BatchNormalization()(L.Conv2D(16, 3, strides=2, padding="same")(x)))
    x = _mbconv(L, x, 16, 2, ("relu6", "hard_sigmoid"), expand=3)
    x = _mbconv(L, x, 24, 1, ("hard_swish", "hard_sigmoid"), expand=3)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(32, activation="hard_swish")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="mobilenetv3")


def densenet():
    """Dense blocks (BN-ReLU-conv, concatenated growth) with a transition between them."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Conv2D(16, 3, padding="same")(L.Rescaling(1 / 255.0)(inp))
    for block in range(2):
        for _ in range(2):
            y = L.Conv2D(16, 1, use_bias=False)(L.ReLU()(L.BatchNormalization()(x)))
            y = L.Conv2D(8, 3, padding="same", use_bias=False)(L.ReLU()(L.BatchNormalization()(y)))
            x = L.Concatenate()([x, y])
        if block == 0:
            x = L.AveragePooling2D(2)(L.Conv2D(16, 1)(L.ReLU()(L.BatchNormalization()(x))))
    x = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(x)))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="densenet")


def convnext():
    """ConvNeXt blocks: depthwise 7x7, LayerNorm, pointwise MLP with exact GELU, residual."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.LayerNormalization(epsilon=1e-6)(L.Conv2D(24, 4, strides=4)(x))
    for _ in range(2):
        y = L.DepthwiseConv2D(7, padding="same")(x)
        y = L.LayerNormalization(epsilon=1e-6)(y)
        y = L.Dense(96, activation="gelu")(y)  # Keras' default gelu is the exact, erf-based one
        x = L.Add()([x, L.Dense(24)(y)])
    x = L.LayerNormalization(epsilon=1e-6)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="convnext")


def vit():
    """A ViT encoder: patch embedding, learned positions, pre-norm MultiHeadAttention + GELU MLP."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Conv2D(32, 8, strides=8)(L.Rescaling(1 / 255.0)(inp))
    x = L.Reshape((-1, 32))(x)
    x = L.Add()([x, L.Embedding(x.shape[1], 32)(np.arange(x.shape[1])[None])])
    for _ in range(2):
        y = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.MultiHeadAttention(num_heads=4, key_dim=8)(y, y)])
        y = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.Dense(32)(L.Dense(64, activation="gelu")(y))])
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="vit")


def resnext():
    """ResNeXt blocks: 1x1 reduce, 3x3 grouped conv (4 groups), 1x1 expand, residual."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, strides=2, padding="same")(L.Rescaling(1 / 255.0)(inp))))
    for _ in range(2):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 1)(x)))
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, padding="same", groups=4)(y)))
        x = L.ReLU()(L.Add()([x, L.BatchNormalization()(L.Conv2D(32, 1)(y))]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="resnext")


def unet():
    """A U-Net: two downs, transposed-conv and bilinear ups, skip concatenations, per-pixel classes."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    d1 = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    d2 = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D()(d1))
    b = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D()(d2))
    u2 = L.Concatenate()([L.Conv2DTranspose(16, 2, strides=2)(b), d2])
    u2 = L.Conv2D(16, 3, padding="same", activation="relu")(u2)
    u1 = L.Concatenate()([L.UpSampling2D(interpolation="bilinear")(u2), d1])
    u1 = L.Conv2D(8, 3, padding="same", activation="relu")(u1)
    return keras.Model(inp, L.Conv2D(3, 1, activation="softmax")(u1), name="unet")


def denoiser():
    """Image to image: a residual denoiser whose output is an image of the input's size."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    y = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(16, 3, padding="same", activation="relu")(y)
    y = L.Conv2D(3, 3, padding="same")(y)
    return keras.Model(inp, L.Activation("sigmoid")(L.Subtract()([x, y])), name="denoiser")


def _sequence(name, core):
    keras, L = _seed()
    inp = keras.Input((STEPS, 6), name="signal")
    x = core(L)(inp)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name=name)


def lstm():
    """Two stacked LSTMs: the first returns its sequence, the second its last state."""
    return _sequence("lstm", lambda L: lambda x: L.LSTM(12)(L.LSTM(16, return_sequences=True)(x)))


def gru():
    """Two stacked GRUs (return_sequences true, then false)."""
    return _sequence("gru", lambda L: lambda x: L.GRU(12)(L.GRU(16, return_sequences=True)(x)))


def simple_rnn():
    """Two stacked SimpleRNNs (return_sequences true, then false)."""
    return _sequence("simple_rnn", lambda L: lambda x: L.SimpleRNN(12)(L.SimpleRNN(16, return_sequences=True)(x)))


def bidirectional():
    """A Bidirectional LSTM over the sequence, then a Bidirectional GRU to one vector."""
    return _sequence("bidirectional", lambda L: lambda x: L.Bidirectional(L.GRU(8))(
        L.Bidirectional(L.LSTM(8, return_sequences=True))(x)))


def conv1d():
    """A 1-D conv net over a signal: strided and dilated convs, global pooling."""
    def core(L):
        def f(x):
            x = L.Conv1D(16, 3, padding="same", activation="relu")(x)
            x = L.Conv1D(16, 3, strides=2, padding="same", activation="relu")(x)
            x = L.Conv1D(16, 3, dilation_rate=2, padding="causal", activation="relu")(x)
            return L.GlobalMaxPooling1D()(x)
        return f
    return _sequence("conv1d", core)


def text():
    """Token ids (int32) into an Embedding, an LSTM over the sequence, attention pooling, a classifier."""
    keras, L = _seed()
    inp = keras.Input((TOKENS,), dtype="int32", name="tokens")
    x = L.LSTM(16, return_sequences=True)(L.Embedding(VOCAB, 16)(inp))
    scores = L.Softmax(axis=1)(L.Dense(1)(x))  # attention pooling: a learned weight per position
    x = L.Flatten()(L.Dot(axes=1)([scores, x]))
    return keras.Model(inp, L.Dense(3, activation="softmax")(x), name="text")


def tabular():
    """Tabular features: normalization, an MLP with BatchNorm and dropout, a regression output."""
    keras, L = _seed()
    inp = keras.Input((10,), name="features")
    x = L.Normalization(mean=np.linspace(-1, 1, 10), variance=np.linspace(0.5, 2, 10))(inp)
    x = L.Dropout(0.2)(L.BatchNormalization()(L.Dense(32, activation="relu")(x)))
    x = L.Dense(16, activation="relu")(x)
    return keras.Model(inp, L.Dense(1)(x), name="tabular")


def two_inputs():
    """A photo and a metadata vector, each by its own name, joined before the classifier."""
    keras, L = _seed()
    image = keras.Input((IMAGE, IMAGE, 3), name="photo")
    meta = keras.Input((5,), name="metadata")
    x = L.Conv2D(8, 3, strides=2, activation="relu")(L.Rescaling(1 / 255.0)(image))
    x = L.GlobalAveragePooling2D()(L.Conv2D(16, 3, strides=2, activation="relu")(x))
    m = L.Dense(8, activation="relu")(meta)
    x = L.Dense(16, activation="relu")(L.Concatenate()([x, m]))
    return keras.Model([image, meta], L.Dense(4, activation="softmax")(x), name="two_inputs")


def two_outputs():
    """One backbone, two heads: class probabilities and a box (4 numbers in 0..1)."""
    keras, L = _seed()
    inp = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, activation="relu")(L.Rescaling(1 / 255.0)(inp))
    x = L.GlobalAveragePooling2D()(L.Conv2D(16, 3, strides=2, activation="relu")(x))
    cls = L.Dense(3, activation="softmax", name="classes")(x)
    box = L.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(inp, [cls, box], name="two_outputs")


ARCHITECTURES = {a.name: a for a in (
    Architecture("efficientnet", "vision", "EfficientNet MBConv blocks (swish, squeeze-excite)", efficientnet),
    Architecture("mobilenetv3", "vision", "MobileNetV3 blocks (hard-swish, hard-sigmoid SE, ReLU6)", mobilenetv3),
    Architecture("densenet", "vision", "DenseNet dense blocks and a transition", densenet),
    Architecture("convnext", "vision", "ConvNeXt blocks: depthwise 7x7, LayerNorm, exact GELU", convnext),
    Architecture("vit", "vision", "ViT encoder: patches, MultiHeadAttention, exact GELU MLP", vit),
    Architecture("resnext", "vision", "ResNeXt blocks with grouped conv (groups=4)", resnext),
    Architecture("unet", "vision", "U-Net: transposed conv, bilinear upsampling, skips", unet),
    Architecture("denoiser", "vision", "image to image residual denoiser", denoiser),
    Architecture("lstm", "sequence", "stacked LSTM (return_sequences true, then false)", lstm),
    Architecture("gru", "sequence", "stacked GRU (return_sequences true, then false)", gru),
    Architecture("simple_rnn", "sequence", "stacked SimpleRNN (return_sequences true, then false)", simple_rnn),
    Architecture("bidirectional", "sequence", "Bidirectional LSTM, then Bidirectional GRU", bidirectional),
    Architecture("conv1d", "sequence", "Conv1D: strided, dilated, causal", conv1d),
    Architecture("text", "text", "int32 token ids, Embedding, LSTM, attention pooling", text),
    Architecture("tabular", "tabular", "Normalization, MLP with BatchNorm, regression", tabular),
    Architecture("two_inputs", "multi", "two inputs by name: a photo and a metadata vector", two_inputs),
    Architecture("two_outputs", "multi", "two outputs: classes and a box", two_outputs),
)}


def sample_inputs(model, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for each of the model's inputs, by name, in its own dtype and range.

    Images are raw pixels 0..255, token ids 0..VOCAB-1, everything else standard normal.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for t in model.inputs:
        shape = (count, *tuple(t.shape)[1:])
        if "int" in str(t.dtype):
            out[t.name] = rng.integers(0, VOCAB, shape).astype(str(t.dtype))
        elif len(shape) == 4:
            out[t.name] = rng.uniform(0, 255, shape).astype(np.float32)
        else:
            out[t.name] = rng.normal(0, 1, shape).astype(np.float32)
    return out
