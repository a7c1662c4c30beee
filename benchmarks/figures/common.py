"""What more than one figure script needs: a silent log, MobileNetV2 at 224 px, and a demo dist."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


def figure_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of `python -m benchmarks.figures.MODULE`, its docstring as the help."""
    prog = "python -m benchmarks.figures" + (f".{module}" if module else "")
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


@contextlib.contextmanager
def work_dir(keep: Path | None = None) -> Iterator[Path]:
    """`keep` (created if missing) when given, else a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        yield work


def quiet(message: str) -> None:
    """A log that drops the library's progress lines: the scripts print figures."""


def mobilenet_v2_224():
    """MobileNetV2 as `mobilepack train --arch mobilenet_v2` builds it, at 224 px with 1000 classes, seed 0.

    weights=None: size and latency do not depend on the weights, and nothing is downloaded.
    """
    import keras

    from train.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("mobilenet_v2", (224, 224), 1000)


def save_mobilenet_v2(work: Path, calibration: int = 100) -> tuple[Path, Path]:
    """mobilenet_v2_224() saved in `work`, and `calibration` random-pixel calibration images (.npy)."""
    path, calib = work / "mobilenet_v2.keras", work / "calib.npy"
    mobilenet_v2_224().save(path)
    np.save(calib, np.random.default_rng(0).uniform(0, 255, (calibration, 224, 224, 3)).astype(np.float32))
    return path, calib


def demo_dist(path: Path) -> Path:
    """`path`, made first if it holds no dist: digits trained and converted as `mobilepack demo` does.

    Only train and convert: every script that uses the dist benches it itself.
    """
    if (path / "manifest.json").is_file():
        return path
    from convert.api import ConvertConfig, convert
    from train.trainer import TrainConfig, train

    print(f"{path}: no demo dist; training digits and converting it as `mobilepack demo` does ...", flush=True)
    run = path.parent / f"{path.name}_run"
    train(TrainConfig(), run, log=quiet, verbose=0)
    convert(run, path, ConvertConfig(targets=("tflite", "coreml"), coreml_formats=("mlprogram", "neuralnetwork")),
            log=quiet)
    return path
