"""docs/models.md's support table: every architecture of train/architectures.py x target x variant.

    cog -r docs/models.md      # re-run the zoo (a few minutes) and rewrite the table
    python docs/models.py      # print each architecture's SQNR (dB) per variant instead

Each architecture is built with its seeded random weights, saved, converted by `convert()` to every
default variant of both targets (calibrated on 32 random samples of its own inputs), and each
artifact is run on 8 other samples by the runner `bench` uses (LiteRT; Core ML's reference evaluator
off macOS) and compared with the Keras model per output by `bench`'s SQNR. A cell is ✓ when the variant
converted, ran, and (for the float variants) reached its floor; otherwise it is the reason, as
`convert` or the check says it. tests/test_zoo_*.py run the same check per family and require the
table's rows to be what they find, so the table cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from train.architectures import ARCHITECTURES, sample_inputs  # noqa: E402

# The floors the float variants must reach against Keras, per output (SQNR, dB). fp16 computes in fp16.
FLOORS = {("tflite", "fp32"): 60.0, ("coreml", "fp32"): 60.0, ("coreml", "fp16"): 20.0}
CALIBRATION, EVALUATION = 32, 8


def variants() -> list[tuple[str, str, str]]:
    """(target, format, quantization) of every default variant of both targets, in `convert`'s order."""
    from convert.config import ConvertConfig

    return ConvertConfig(targets=("tflite", "coreml")).variants()


def column(target: str, fmt: str, quant: str) -> str:
    return f"{'TFLite' if target == 'tflite' else 'Core ML'} {quant}"


def check(name: str, folder: Path, log=lambda m: None) -> dict:
    """{column: "✓" or the reason} for one architecture, converted into `folder`, plus its SQNRs."""
    from benchmarks.parity.compare import sqnr_db
    from benchmarks.runners import artifact_runner, predict_batched
    from convert.api import convert
    from convert.config import ConvertConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = ARCHITECTURES[name].build()
    model.save(folder / "model.keras")
    np.savez(folder / "calibration.npz", **sample_inputs(model, CALIBRATION, seed=1))
    data = sample_inputs(model, EVALUATION, seed=2)
    inputs = [data[t.name] for t in model.inputs]
    reference = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    reference = [np.asarray(r) for r in (reference if isinstance(reference, (list, tuple)) else [reference])]
    config = ConvertConfig(targets=("tflite", "coreml"), calibration=str(folder / "calibration.npz"))
    manifest = convert(folder / "model.keras", folder / "dist", config, log=log)
    cells, sqnr = {}, {}
    for f in manifest.failed:
        cells[column(f.target, f.format, f.quantization)] = f.reason
    for a in manifest.artifacts:
        col = column(a.target, a.format, a.quantization)
        try:
            out = predict_batched(artifact_runner(a.path(folder / "dist"), a.target,
                                                  **({"input_names": [t.name for t in model.inputs]}
                                                     if a.target == "tflite" else {})), inputs, EVALUATION)
        except Exception as exc:  # noqa: BLE001 - the table says what failed instead of stopping
            cells[col] = f"runs: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            continue
        sqnr[col] = [sqnr_db(o, r) for o, r in zip(out, reference)]
        floor = FLOORS.get((a.target, a.quantization))
        low = [s for s in sqnr[col] if floor is not None and not s >= floor]  # NaN outputs miss it too
        cells[col] = f"SQNR {min(low):.1f} dB < {floor:g} dB" if low else "✓"
    return {"cells": cells, "sqnr": sqnr}


def row(name: str, cells: dict) -> str:
    a = ARCHITECTURES[name]
    return "| " + " | ".join([f"`{name}`", a.what] + [cells.get(column(*v), "not run") for v in variants()]) + " |"


def header() -> list[str]:
    cols = ["architecture", "what it holds"] + [column(*v) for v in variants()]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def table(folder: Path, log=print) -> str:
    """The whole table, running every architecture (cog calls this)."""
    lines = header()
    for name in ARCHITECTURES:
        log(f"{name}...")
        lines.append(row(name, check(name, Path(folder) / name)["cells"]))
    return "\n".join(lines) + "\n"


def table_rows(text: str) -> dict[str, str]:
    """docs/models.md's rows by architecture name."""
    return {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}


def main() -> None:
    """`python docs/models.py [NAME ...]`: each architecture's worst-output SQNR (dB) per variant, as measured."""
    import tempfile

    names = sys.argv[1:] or list(ARCHITECTURES)
    cols = [column(*v) for v in variants()]
    print("architecture".ljust(14) + "".join(c.replace("Core ML", "CoreML").rjust(16) for c in cols))
    with tempfile.TemporaryDirectory(prefix="mobilepack-zoo-") as folder:
        for name in names:
            result = check(name, Path(folder) / name)
            cells = [f"{min(result['sqnr'][c]):.1f}" if c in result["sqnr"] else "failed" for c in cols]
            print(name.ljust(14) + "".join(c.rjust(16) for c in cells), flush=True)


if __name__ == "__main__":
    main()
