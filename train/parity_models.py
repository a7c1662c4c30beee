"""Small seeded models that are not single-output classifiers, on synthetic data made here.

They exist so that per-output parity can be shown and tested on what users ship besides
classifiers: a two-headed detector (class probabilities + a box) and a 1-D conv sequence
regressor. Each can carry an "outlier" pair of layers: one channel scaled up by `factor` and
back down after (`outlier_run` puts the same pair into a trained small_cnn). The float function
is unchanged, but that channel's range sets the int8 scale of the tensor between them, so int8
rounding erases every other channel there: the classic way a real model's int8 artifact breaks
while its float ones stay exact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

DETECTOR_SIZE = 16
SEQUENCE_SHAPE = (32, 4)
DETECTOR_CLASSES = ("red", "green", "blue")


def detector_data(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Noise images with one coloured square: its colour is the class, its corners the box (0-1)."""
    rng = np.random.default_rng(seed)
    s = DETECTOR_SIZE
    x = rng.uniform(0, 60, (count, s, s, 3)).astype(np.float32)
    cls = rng.integers(0, 3, count)
    box = np.zeros((count, 4), np.float32)
    for i in range(count):
        w, h = rng.integers(4, 9, 2)
        x0, y0 = rng.integers(0, s - w + 1), rng.integers(0, s - h + 1)
        x[i, y0:y0 + h, x0:x0 + w, cls[i]] = 255.0
        box[i] = (x0 / s, y0 / s, (x0 + w) / s, (y0 + h) / s)
    return {"x": x, "y_class": cls.astype(np.int64), "y_box": box}


def sequence_data(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Noisy 4-channel signals; the target is the amplitude of the sine in channel 0."""
    rng = np.random.default_rng(seed)
    steps, channels = SEQUENCE_SHAPE
    t = np.arange(steps, dtype=np.float32)
    amp = rng.uniform(0.5, 3.0, count).astype(np.float32)
    freq = rng.uniform(0.1, 0.6, count).astype(np.float32)
    x = rng.normal(0, 0.3, (count, steps, channels)).astype(np.float32)
    x[:, :, 0] += amp[:, None] * np.sin(freq[:, None] * t[None, :])
    return {"x": x, "y": amp[:, None]}


def _outlier_pair(keras, x, name: str):
    """Two bias-free 1x1 maps, identity until set_outlier scales one channel up and back down."""
    channels = x.shape[-1]
    conv = {4: keras.layers.Conv2D, 3: keras.layers.Conv1D}.get(len(x.shape), keras.layers.Dense)
    kwargs = {} if conv is keras.layers.Dense else {"kernel_size": 1}
    up = conv(channels, use_bias=False, name=f"{name}_outlier_up", trainable=False, **kwargs)
    down = conv(channels, use_bias=False, name=f"{name}_outlier_down", trainable=False, **kwargs)
    return down(up(x))


def set_outlier(model, name: str, factor: float, x=None) -> None:
    """Scale one channel of the tensor between `name`'s outlier layers by `factor` (1.0: identity).

    With inputs `x`, the channel is the one with the largest activation on them: with a factor of 510 or more
    its range then sets an int8 scale under which every other channel of that (ReLU, non-negative) tensor
    rounds to zero, whatever the training made of the weights. Without, channel 0, which a model trained on
    another CPU may have left weak or dead, and then the outlier erases less.
    """
    channel = 0
    if x is not None and factor != 1.0:
        import keras

        tap = keras.Model(model.inputs, model.get_layer(f"{name}_outlier_up").input)
        acts = np.asarray(tap.predict(x, verbose=0))
        channel = int(acts.reshape(-1, acts.shape[-1]).max(axis=0).argmax())
    for suffix, scale in (("up", factor), ("down", 1.0 / factor)):
        layer = model.get_layer(f"{name}_outlier_{suffix}")
        kernel = layer.get_weights()[0]
        diag = np.ones(kernel.shape[-1], np.float32)
        diag[channel] = scale
        layer.set_weights([np.diag(diag).reshape(kernel.shape)])


def two_head_detector(seed: int = 0, epochs: int = 8):
    """image (16x16x3 raw pixels) -> class (softmax over 3) and box (4 linear), trained on detector_data."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((DETECTOR_SIZE, DETECTOR_SIZE, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.Flatten()(x)
    cls = L.Dense(3, activation="softmax", name="class")(L.Dense(32, activation="relu")(x))
    hidden = L.Dense(32, activation="relu", name="box_hidden")(x)
    box = L.Dense(4, name="box")(_outlier_pair(keras, hidden, "box"))
    model = keras.Model(inp, [cls, box], name="two_head_detector")
    set_outlier(model, "box", 1.0)
    data = detector_data(1024, seed)
    model.compile("adam", loss=["sparse_categorical_crossentropy", "mse"])
    model.fit(data["x"], [data["y_class"], data["y_box"]], epochs=epochs, batch_size=64, verbose=0)
    return model


def sequence_regressor(seed: int = 0, epochs: int = 12):
    """signal (32 steps x 4 channels) -> amplitude (1 linear output), trained on sequence_data."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input(SEQUENCE_SHAPE, name="signal")
    x = L.Conv1D(16, 5, padding="same", activation="relu")(inp)
    x = _outlier_pair(keras, x, "features")
    x = L.Conv1D(16, 3, padding="same", activation="relu")(x)
    x = L.GlobalAveragePooling1D()(x)
    out = L.Dense(1, name="amplitude")(x)
    model = keras.Model(inp, out, name="sequence_regressor")
    set_outlier(model, "features", 1.0)
    data = sequence_data(1024, seed)
    model.compile("adam", loss="mse")
    model.fit(data["x"], data["y"], epochs=epochs, batch_size=64, verbose=0)
    return model


def outlier_model(base, factor: float = 1000.0, after: str = "relu2", x=None):
    """`base` (a functional image model such as small_cnn) with an outlier pair after layer `after`; `x`: inputs
    that pick the channel to blow up (see set_outlier)."""
    import keras

    y = _outlier_pair(keras, base.get_layer(after).output, after)
    for layer in base.layers[base.layers.index(base.get_layer(after)) + 1:]:
        y = layer(y)
    model = keras.Model(base.inputs, y, name="outlier_cnn")
    set_outlier(model, after, factor, x)
    return model


def outlier_run(run: Path, out: Path, samples: int = 200) -> Path:
    """A copy of run dir `run` whose model is the outlier variant (same split, labels, preprocessing).

    The blown-up channel is the strongest on `samples` of the run's training images, so plain full int8 of it
    erases every other channel there and loses tens of pp on any CPU; `convert --max-drop 1.0` recovers it by
    keeping the blown-up tensor's producer and reader float.
    """
    from train.data import split_part
    from train.loading import load_keras_model
    from train.preprocessing import Preprocessing

    data, train_ids = split_part(run / "split.json", "train", log=lambda m: None)
    x = Preprocessing.load(run / "preprocessing.json").apply_batch([data.images[i] for i in train_ids[:samples]])
    shutil.copytree(run, out)
    outlier_model(load_keras_model(run), x=x).save(out / "model.keras")
    return out
