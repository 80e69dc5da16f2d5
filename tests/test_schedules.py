import math

import numpy as np
import pytest

from harness.methods.schedules import (
    cosine,
    exponential_decay,
    linear_decay,
    linear_ramp,
    natural_exp_cosine,
)

GRID = np.linspace(0.0, 1.0, 41)


def _fraction(f, p):
    """Position of the value within [end, start] for start=3, end=1."""
    return (f(p, 3.0, 1.0) - 1.0) / 2.0


@pytest.mark.parametrize("f", [cosine, natural_exp_cosine, linear_decay, exponential_decay])
def test_endpoints_and_monotone_decay(f):
    assert math.isclose(f(0.0, 3.0, 1.0), 3.0) and math.isclose(f(1.0, 3.0, 1.0), 1.0, rel_tol=1e-12)
    values = [f(p, 3.0, 1.0) for p in GRID]
    assert all(a > b for a, b in zip(values, values[1:]))
    # increasing schedules too (start < end), and progress outside [0, 1] is clipped
    assert math.isclose(f(1.0, 0.5, 2.0), 2.0) and f(0.3, 0.5, 2.0) > 0.5
    assert f(-0.5, 3.0, 1.0) == f(0.0, 3.0, 1.0) and f(1.7, 3.0, 1.0) == f(1.0, 3.0, 1.0)


def test_cosine_closed_form():
    assert math.isclose(cosine(0.5, 3.0, 1.0), 2.0)
    assert math.isclose(_fraction(cosine, 0.25), (1 + math.sqrt(0.5)) / 2)


def test_natural_exp_cosine_values_and_below_cosine():
    # METHODS.md M44: 0.784 vs 0.854 of the range at 0.25; 0.378 vs 0.5 at 0.5
    assert round(_fraction(natural_exp_cosine, 0.25), 3) == 0.784
    assert round(_fraction(cosine, 0.25), 3) == 0.854
    assert round(_fraction(natural_exp_cosine, 0.5), 3) == 0.378
    assert all(natural_exp_cosine(p, 3.0, 1.0) < cosine(p, 3.0, 1.0) for p in GRID[1:-1])


def test_linear_and_exponential_interpolation():
    assert math.isclose(linear_decay(0.25, 1.0, 0.0), 0.75)
    # geometric: equal ratios over equal steps, geometric mean at half way
    assert math.isclose(exponential_decay(0.5, 4.0, 0.25), 1.0)
    r = [exponential_decay(p, 5.0, 0.1) for p in (0.0, 0.2, 0.4, 0.6)]
    assert np.allclose(np.diff(np.log(r)), np.log(0.1 / 5.0) * 0.2)
    with pytest.raises(ValueError):
        exponential_decay(0.5, 1.0, 0.0)


def test_linear_ramp_allegro():
    # [004]: H = 25, chi_max = 0.1, chi_min = 0 -> 0.004 per epoch, held at 0.1 after H
    chi = [linear_ramp(e, 25, 0.1) for e in range(40)]
    assert np.allclose(chi[:26], 0.004 * np.arange(26))
    assert chi[25:] == [pytest.approx(0.1)] * 15
    # chi_min only sets the slope (Eq. 6 has no offset); clipped at chi_max
    assert math.isclose(linear_ramp(10, 20, 0.3, 0.1), 0.1)
    assert math.isclose(linear_ramp(100, 20, 0.3, 0.1), 0.3)
    assert linear_ramp(0, 0, 0.3) == 0.3
