from __future__ import annotations

import math
from fractions import Fraction

import pytest

from mezzo.governor.throttle import ThrottleError, effective_tpm, validate_rate


@pytest.mark.parametrize("rate", [1, 1.0, 0.5, 1e-9, Fraction(1, 3)])
def test_rates_in_the_half_open_unit_interval_are_accepted(rate: object) -> None:
    assert validate_rate(rate) == float(rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "rate", [0, 0.0, -0.1, 1.0000001, 2, math.nan, math.inf, True, "0.5", None]
)
def test_other_rates_are_refused(rate: object) -> None:
    with pytest.raises(ThrottleError, match=r"\(0, 1\]"):
        validate_rate(rate)


def test_effective_tpm_is_the_share_of_the_provider_limit() -> None:
    assert effective_tpm(150_000, 0.5) == 75_000
    assert effective_tpm(150_000, 1.0) == 150_000
    assert effective_tpm(None, 0.5) is None
    with pytest.raises(ThrottleError):
        effective_tpm(150_000, 0)
    with pytest.raises(ThrottleError, match="provider TPM"):
        effective_tpm(0, 0.5)
