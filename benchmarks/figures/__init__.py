"""The scripts that print the figures the README quotes, each run as `python -m benchmarks.figures.NAME`.

`python -m benchmarks.figures` runs them all (`--quick`: a subset of a few minutes). Nothing in the
library or the tests imports this package; it may import all of mobilepack (train, convert, benchmarks, the front
door). What two scripts share lives in `common`.
"""

import os

# Before any script imports TensorFlow: its C++ log lines would bury the figures.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
