"""The switch the compiled kernels read on every call, for A/B runs and tests.

``LSTM_EXT_FUSED_STEP=0`` keeps the plain time loop instead of the fused recurrent step
(csrc/runtime/cpu/fused_step.h), forward and backward. Being read per call, it can alternate in
one process; a training step's backward runs under whatever is set when it runs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

FUSED_STEP = "LSTM_EXT_FUSED_STEP"


@contextmanager
def fused_step(enabled: bool) -> Iterator[None]:
    """Within the block, the fused step on (the default) or off; what was set before comes back."""
    before = os.environ.get(FUSED_STEP)
    os.environ[FUSED_STEP] = "1" if enabled else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[FUSED_STEP]
        else:
            os.environ[FUSED_STEP] = before
