"""Convolutional vision models: EfficientNet and MobileNetV3 blocks, DenseNet, a U-Net, an image-to-image denoiser.

Each converts to every default variant of both targets and matches Keras (docs/models.py); one file
per family, so xdist spreads the zoo over its workers.
"""

import pytest

from zoo_helpers import assert_supported


@pytest.mark.parametrize("name", ['efficientnet', 'mobilenetv3', 'densenet', 'unet', 'denoiser'])
def test_converts_to_every_default_variant_and_matches_keras(name, tmp_path):
    assert_supported(name, tmp_path)
