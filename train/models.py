"""Model builders. Normalization is the first layer, so models take raw 0-255 RGB."""

from __future__ import annotations

from train.errors import MobilepackError

ARCHS = ("small_cnn", "mobilenet_v2")


def build_model(arch: str, image_size: tuple[int, int], num_classes: int, alpha: float = 1.0, width: int = 32):
    import keras
    from keras import layers

    h, w = image_size
    inputs = keras.Input((h, w, 3), name="image")
    if arch == "small_cnn":
        x = layers.Rescaling(1.0 / 255.0, name="normalize")(inputs)
        for i, filters in enumerate((width, 2 * width, 4 * width)):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            # momentum 0.9: small datasets give few steps, and 0.99 leaves stale moving stats.
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
            if i < 2:
                x = layers.MaxPooling2D(name=f"pool{i}")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        x = layers.Dropout(0.2, name="dropout")(x)
        outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="small_cnn")
    if arch == "mobilenet_v2":
        if min(h, w) < 32:
            raise MobilepackError(f"mobilenet_v2 needs --img-size of at least 32, got {min(h, w)}")
        # MobileNetV2 expects [-1, 1]; fold that into the model.
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
        base = keras.applications.MobileNetV2(
            input_tensor=x, alpha=alpha, weights=None, include_top=True, classes=num_classes,
        )
        return keras.Model(inputs, base.output, name=f"mobilenet_v2_{alpha:g}")
    raise MobilepackError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")


def normalization_of(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the in-model normalization, for Preprocessing."""
    if arch == "mobilenet_v2":
        return (127.5,) * 3, (127.5,) * 3
    return (0.0,) * 3, (255.0,) * 3
