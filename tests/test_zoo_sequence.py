"""Sequence models: stacked LSTM, GRU and SimpleRNN, Bidirectional, Conv1D.

Each converts to every default variant of both targets and matches Keras (docs/models.py); one file
per family, so xdist spreads the zoo over its workers.
"""

import pytest

from zoo_helpers import assert_supported


@pytest.mark.parametrize("name", ['lstm', 'gru', 'simple_rnn', 'bidirectional', 'conv1d'])
def test_converts_to_every_default_variant_and_matches_keras(name, tmp_path):
    assert_supported(name, tmp_path)
