"""`mobilepack train`: fit a model and write a self-describing run dir."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from train.data import load_dataset, save_split, stratified_split
from train.documents import NUMBER, load_document, read_text
from train.errors import DocumentError, MobilepackError
from train.fsutil import atomic_write_json, check_writable_dir, staged_directory
from train.models import ARCHS, build_model, normalization_of
from train.preprocessing import Preprocessing

RUN_FILES = ("model.keras", "labels.txt", "preprocessing.json", "split.json", "train_config.json",
             "history.json", "metrics.json")


@dataclass(frozen=True)
class TrainConfig:
    data: str = "digits"
    arch: str = "small_cnn"
    img_size: int = 32
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-3
    alpha: float = 1.0
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise MobilepackError(f"unknown --arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.img_size < 8:
            raise MobilepackError(f"--img-size must be at least 8, got {self.img_size}")
        if self.epochs < 1:
            raise MobilepackError(f"--epochs must be at least 1, got {self.epochs}")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    val_accuracy: float
    test_accuracy: float


def preprocessing_for(config: TrainConfig) -> Preprocessing:
    mean, std = normalization_of(config.arch)
    return Preprocessing(image_size=(config.img_size, config.img_size), mean=mean, std=std)


def train(config: TrainConfig, out: Path, log: Callable[[str], None] = print, verbose: int = 1) -> TrainResult:
    """Train `config` and write the run dir `out` atomically."""
    import keras
    import tensorflow as tf

    check_writable_dir(Path(out))  # before the slow part, not after training
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    dataset = load_dataset(config.data, log)
    split = stratified_split(dataset.labels, config.val_fraction, config.test_fraction, config.seed)
    prep = preprocessing_for(config)
    log(f"data: {config.data}, {len(dataset)} images, {len(dataset.class_names)} classes; "
        f"split train {len(split['train'])} / val {len(split['val'])} / test {len(split['test'])}")
    xs = {k: prep.apply_batch([dataset.images[i] for i in v]) for k, v in split.items()}
    ys = {k: dataset.labels[v] for k, v in split.items()}

    model = build_model(config.arch, prep.image_size, len(dataset.class_names), config.alpha)
    steps = int(np.ceil(len(xs["train"]) / config.batch_size)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    log(f"training {config.arch} at {config.img_size}x{config.img_size} for {config.epochs} epochs")
    history = model.fit(
        xs["train"], ys["train"], validation_data=(xs["val"], ys["val"]), epochs=config.epochs,
        batch_size=config.batch_size, shuffle=True, verbose=verbose,
    )
    val_acc = _accuracy(model, xs["val"], ys["val"])
    test_acc = _accuracy(model, xs["test"], ys["test"])
    log(f"val accuracy {val_acc:.4f}, test accuracy {test_acc:.4f}")

    with staged_directory(out) as stage:
        model.save(stage / "model.keras")
        (stage / "labels.txt").write_text("\n".join(dataset.class_names) + "\n")
        prep.save(stage / "preprocessing.json")
        save_split(stage / "split.json", dataset, split, config.seed)
        atomic_write_json(stage / "train_config.json", dataclasses.asdict(config))
        atomic_write_json(stage / "history.json", {k: [float(v) for v in vs] for k, vs in history.history.items()})
        atomic_write_json(stage / "metrics.json", {
            "val_accuracy": val_acc, "test_accuracy": test_acc,
            "counts": {k: len(v) for k, v in split.items()},
        })
    return TrainResult(Path(out), val_acc, test_acc)


def _accuracy(model, x, y) -> float:
    probs = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def read_labels(path: Path, classes: int | None = None) -> list[str]:
    """A run dir's labels.txt: one class name per line, in output order; `classes`: the count the model has."""
    path = Path(path)
    fix = f"regenerate it with `mobilepack train --out {path.parent}`"
    labels = [line for line in read_text(path, fix).splitlines() if line.strip()]
    if not labels:
        raise DocumentError(f"{path}: holds no labels (one class name per line); {fix}")
    if classes is not None and len(labels) != classes:
        raise DocumentError(f"{path}: {len(labels)} labels, but the model's output has {classes} classes; "
                            f"give one line per class, or {fix}")
    return labels


_JSON_TYPE = {"str": str, "int": int, "float": NUMBER}
TRAIN_CONFIG_SPEC = {f.name: _JSON_TYPE[f.type] for f in dataclasses.fields(TrainConfig)}


def read_train_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "train_config.json"
    return load_document(path, TRAIN_CONFIG_SPEC, f"regenerate it with `mobilepack train --out {run_dir}`")
