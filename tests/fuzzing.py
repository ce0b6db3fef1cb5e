"""How many examples the property tests draw: the fixed CI share, or SCALE times as many under `make fuzz`."""

import os

FUZZING = bool(os.environ.get("POISONLAB_FUZZ"))
SCALE = 10 if FUZZING else 1


def examples(n: int) -> int:
    """`n` examples in `make test` and CI (derandomized), SCALE * `n` random ones under `make fuzz`."""
    return n * SCALE
