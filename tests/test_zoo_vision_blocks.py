"""Vision models that used to fail: exact GELU (ConvNeXt, ViT with attention), grouped conv (ResNeXt), two outputs.

Each converts to every default variant of both targets and matches Keras (docs/models.py); one file
per family, so xdist spreads the zoo over its workers.
"""

import pytest

from zoo_helpers import assert_supported


@pytest.mark.parametrize("name", ['convnext', 'vit', 'resnext', 'two_outputs'])
def test_converts_to_every_default_variant_and_matches_keras(name, tmp_path):
    assert_supported(name, tmp_path)
