"""What to convert: targets, formats, quantizations, calibration, budget. Saved as convert_config.json."""

from __future__ import annotations

from dataclasses import dataclass

from convert.coreml.convert import COREML_QUANTS
from convert.coreml.variants import DEFAULT_IOS_TARGET, check_ios_target, default_quants, refuse_newer
from convert.errors import UsageError
from convert.shapes import parse_input_shapes
from convert.tflite.convert import TFLITE_DEFAULT, TFLITE_QUANTS

TARGETS = ("tflite", "coreml")
COREML_FORMATS = tuple(COREML_QUANTS)
ALL_QUANTS = ("fp32", "fp16", "dynamic", "int8", "fp16-inference", *COREML_QUANTS["mlprogram"][2:])
INT8_OUTPUTS = ("float32", "uint8")


@dataclass(frozen=True)
class ConvertConfig:
    """quantizations=() means every quantization the chosen targets and formats support."""

    targets: tuple[str, ...] = ("tflite",)
    quantizations: tuple[str, ...] = ()
    coreml_formats: tuple[str, ...] = ("mlprogram",)
    calibration: str | None = None
    calibration_size: int = 200
    int8_output: str = "float32"
    unsafe_load: bool = False
    custom_objects: tuple[str, ...] = ()  # module:name specs; importing them runs the user's code
    input_shapes: tuple[str, ...] = ()  # NAME=1x224x224x3, fixing None sizes
    seed: int = 0
    max_drop_pp: float | None = None  # accuracy budget: keep one artifact per family, the most compressed within it
    min_sqnr_db: float | None = None  # SQNR budget for outputs without labels (every output)
    min_sqnr_by_output: tuple[tuple[str, float], ...] = ()  # ... or per output name
    ios_target: int = DEFAULT_IOS_TARGET  # the oldest iOS the app supports: Core ML variants needing more are refused

    def __post_init__(self):
        if self.max_drop_pp is not None and not self.max_drop_pp > 0:
            raise UsageError(f"--max-drop {self.max_drop_pp:g}: the accuracy budget must be a number of "
                             "percentage points greater than 0, e.g. --max-drop 0.5")
        if not self.targets:
            raise UsageError(f"--target is empty; valid: {', '.join(TARGETS)}")
        for t in self.targets:
            if t not in TARGETS:
                raise UsageError(f"unknown --target {t!r}; valid: {', '.join(TARGETS)}")
        for f in self.coreml_formats:
            if f not in COREML_FORMATS:
                raise UsageError(f"unknown --coreml-format {f!r}; valid: {', '.join(COREML_FORMATS)}")
        valid = [q for q in ALL_QUANTS if any(q in qs for _, _, qs in self.families())]
        for q in self.quantizations:
            if q not in valid:
                raise UsageError(f"unknown --quant {q!r} for --target {','.join(self.targets)}; valid: {', '.join(valid)}")
        check_ios_target(self.ios_target)
        for target, fmt, qs in self.families():
            if target == "coreml":
                refuse_newer(self.ios_target, fmt, [q for q in self.quantizations if q in qs])
        if self.int8_output not in INT8_OUTPUTS:
            raise UsageError(f"--int8-output {self.int8_output!r}; valid: {', '.join(INT8_OUTPUTS)}")
        if self.calibration_size < 1:
            raise UsageError(f"--calibration-size must be positive, got {self.calibration_size}")
        parse_input_shapes(self.input_shapes)  # syntax now, before the slow load; the names once it is loaded

    def families(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(target, format, quantizations it supports) for every chosen family."""
        out = [("tflite", "tflite", TFLITE_QUANTS)] if "tflite" in self.targets else []
        if "coreml" in self.targets:
            out += [("coreml", f, COREML_QUANTS[f]) for f in self.coreml_formats]
        return out

    @property
    def budgeted(self) -> bool:
        return self.max_drop_pp is not None or self.min_sqnr_db is not None or bool(self.min_sqnr_by_output)

    def budget(self):
        from convert.budget import Budget

        return Budget(self.max_drop_pp, self.min_sqnr_db, tuple(self.min_sqnr_by_output))

    def allows(self, target: str, fmt: str, quant: str) -> bool:
        """Asked for with --quant, or (without it) in the default set of the format and --ios-target."""
        if self.quantizations:
            return quant in self.quantizations
        return quant in TFLITE_DEFAULT if target == "tflite" else quant in default_quants(fmt, self.ios_target)

    def variants(self) -> list[tuple[str, str, str]]:
        return [(t, f, q) for t, f, qs in self.families() for q in qs if self.allows(t, f, q)]
