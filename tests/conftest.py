import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Trials are specified as single-threaded; keep tests deterministic and light on CI's 2 cores."""
    torch.set_num_threads(1)
