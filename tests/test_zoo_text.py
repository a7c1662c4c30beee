"""Token ids (int32) with an LSTM and attention pooling, a tabular regressor, two named inputs.

Each converts to every default variant of both targets and matches Keras (docs/models.py); one file
per family, so xdist spreads the zoo over its workers.
"""

import pytest

from zoo_helpers import assert_supported


@pytest.mark.parametrize("name", ['text', 'tabular', 'two_inputs'])
def test_converts_to_every_default_variant_and_matches_keras(name, tmp_path):
    assert_supported(name, tmp_path)
