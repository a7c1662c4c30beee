"""One object carries what every step of a conversion needs, instead of ten parameters passed along."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from train.preprocessing import Preprocessing

from convert.calibration import CalibrationSet
from convert.config import ConvertConfig


@dataclass(frozen=True)
class ConversionContext:
    """Only `model` is needed to convert one in-memory model; `convert()` fills in the rest."""

    model: object  # the Keras model as converted (sizes fixed, a subclassed model wrapped)
    model_path: Path | None = None  # the file it was loaded from
    config: ConvertConfig = field(default_factory=ConvertConfig)
    stage: Path | None = None  # the staging folder every artifact is written into, swapped in at the end
    image_input: bool = False  # one image input described by `prep`: uint8 int8 input, Core ML ImageType
    prep: Preprocessing | None = None  # the run dir's preprocessing, if any
    labels: list[str] | None = None
    calibration: CalibrationSet | None = None  # int8 representative data, when an int8 job needs it
    metadata: dict = field(default_factory=dict)
    # W8A8's activation ranges: provided by mobilepack (the reference evaluator's), see convert/coreml/w8a8.py
    activation_ranges: object = None  # source sha256, tool versions, preprocessing: stamped into artifacts

    @property
    def image_prep(self) -> Preprocessing | None:
        """The preprocessing that describes the model's input, or None when its input is not that image."""
        return self.prep if self.image_input else None
