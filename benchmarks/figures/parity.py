"""Per-output parity figures: the regression/embedding gate defaults, and verdicts on non-classifiers.

    python -m benchmarks.figures.parity [--work DIR]

1. Defaults: every TFLite and Core ML variant of three non-classifier heads (a sequence regressor,
   a two-headed detector's class and box heads, a tabular regressor), per-output SQNR and max error
   relative to the output's range. The gate rows for regression outputs must sit below every
   healthy figure and above a broken one.
2. A sequence regressor whose int8 artifact is broken by an outlier channel: plain int8 must FAIL
   its gate on SQNR, and `convert --min-sqnr` must pick a mixed or float artifact that passes.
3. The two-headed detector: each head is judged by its kind; breaking only the box head must fail
   the artifact and name the head, while the class head passes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import quiet
from benchmarks.figures.common import figure_parser, work_dir


def _save(model, folder: Path, data: dict, n_cal: int = 200) -> tuple[Path, Path, Path]:
    """The model, an int8 calibration .npz and a validation/test .npz (x plus its labels) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    np.savez(folder / "calib.npz", x=data["x"][:n_cal])
    np.savez(folder / "val.npz", **{k: v[n_cal:n_cal + 300] for k, v in data.items()})
    np.savez(folder / "test.npz", **{k: v[n_cal + 300:] for k, v in data.items()})
    return folder / "model.keras", folder / "calib.npz", folder / "val.npz"


def _bench(dist: Path, data: Path, **config) -> dict:
    from benchmarks.bench import BenchConfig, run_bench

    return run_bench(dist, BenchConfig(data=str(data), threads=(1,), crosscheck=False, **config), log=quiet)


def _convert(model: Path, out: Path, calib: Path, targets=("tflite",), **config) -> Path:
    from convert.api import ConvertConfig, convert

    convert(model, out, ConvertConfig(targets=targets, calibration=str(calib), **config), log=quiet)
    return out


def _models(work: Path) -> dict[str, Path]:
    from train.parity_models import detector_data, sequence_data, sequence_regressor, two_head_detector

    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((8,), name="features")
    tab = keras.Model(inp, keras.layers.Dense(2, name="price")(keras.layers.Dense(32, activation="relu")(inp)))
    tab_data = {"x": np.random.default_rng(4).normal(size=(800, 8)).astype(np.float32)}
    tab_data["y"] = tab.predict(tab_data["x"], verbose=0)
    return {
        "sequence_regressor": _save(sequence_regressor(), work / "seq", sequence_data(800, 1))[0],
        "two_head_detector": _save(two_head_detector(), work / "det", detector_data(800, 1))[0],
        "tabular_regressor": _save(tab, work / "tab", tab_data)[0],
    }


def defaults(work: Path, models: dict[str, Path]) -> None:
    print("1. per-output SQNR / max error of range, every variant (test split, 300 inputs)")
    for name, model in models.items():
        folder = model.parent
        # The Core ML evaluator has no 1-D convolution yet, so the sequence model is TFLite only.
        targets = ("tflite",) if name == "sequence_regressor" else ("tflite", "coreml")
        dist = _convert(model, work / f"{name}_all", folder / "calib.npz", targets=targets,
                        coreml_formats=("mlprogram", "neuralnetwork"))
        report = _bench(dist, folder / "test.npz")
        for row in report["artifacts"]:
            cells = [f"{o['name']} {_sqnr(o)} / {o['max_rel_error']:.2%}" for o in row["outputs"]
                     if o["kind"] != "classification"]
            print(f"   {name:20s} {row['name']:32s} {', '.join(cells)}  {row['status']}")


def _sqnr(o: dict) -> str:
    return "exact" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB"


def broken_sequence(work: Path, models: dict[str, Path]) -> None:
    import keras

    from convert.api import ConvertConfig, RuntimeHooks, convert
    from convert.budget import Budget
    from mobilepack.judge import validation_judge
    from train.parity_models import set_outlier

    folder = models["sequence_regressor"].parent
    model = keras.models.load_model(models["sequence_regressor"])
    set_outlier(model, "features", 1000.0)
    model.save(folder / "outlier.keras")
    plain = _bench(_convert(folder / "outlier.keras", work / "seq_plain", folder / "calib.npz",
                            quantizations=("fp32", "int8")), folder / "test.npz")
    print("2. sequence regressor with an outlier channel (test split)")
    for row in plain["artifacts"]:
        print(f"   plain {row['name']}: {row['outputs'][0]['name']} {_sqnr(row['outputs'][0])}, max error "
              f"{row['outputs'][0]['max_rel_error']:.2%} of range: {row['status'].upper()}")
    start = time.perf_counter()
    budget = Budget(min_sqnr_db=30.0)
    judge = validation_judge(folder / "outlier.keras", budget, log=quiet, validation=str(folder / "val.npz"))
    manifest = convert(folder / "outlier.keras", work / "seq_budget", ConvertConfig(
        calibration=str(folder / "calib.npz"), min_sqnr_db=30.0), log=quiet, hooks=RuntimeHooks(judge=judge))
    [chosen] = manifest.artifacts
    tried = "; ".join(f"{t['candidate']}: {t['compared']}" for t in chosen.notes["search"])
    row = _bench(work / "seq_budget", folder / "test.npz")["artifacts"][0]
    print(f"   --min-sqnr 30 search ({time.perf_counter() - start:.0f} s) tried {tried}")
    print(f"   chose {row['name']} ({row['quantization']}, {row['size_bytes'] / 1024:.1f} KiB): test "
          f"{_sqnr(row['outputs'][0])}, gate {row['status'].upper()}")


def broken_box_head(work: Path, models: dict[str, Path]) -> None:
    import keras

    from train.parity_models import set_outlier

    folder = models["two_head_detector"].parent
    model = keras.models.load_model(models["two_head_detector"])
    set_outlier(model, "box", 1000.0)
    model.save(folder / "outlier.keras")
    report = _bench(_convert(folder / "outlier.keras", work / "det_broken", folder / "calib.npz"), folder / "test.npz")
    print("3. two-headed detector, box head broken by an outlier (test split)")
    for row in report["artifacts"]:
        heads = ", ".join(f"{o['name']} ({o['kind']}): {o['status']}" for o in row["outputs"])
        print(f"   {row['name']}: {heads} -> {row['status'].upper()}")
        if row["status"] == "failed":
            print(f"      reason: {row['reason']}")


def main() -> None:
    parser = figure_parser("parity", __doc__)
    parser.add_argument("--work", type=Path, default=None, help="Keep the models and dists here.")
    args = parser.parse_args()
    with work_dir(args.work) as work:
        start = time.perf_counter()
        models = _models(work)
        defaults(work, models)
        broken_sequence(work, models)
        broken_box_head(work, models)
        print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
