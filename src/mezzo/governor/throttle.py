"""Workspace throttle: a rate in (0, 1] that scales the workspace's share of the provider TPM."""

from __future__ import annotations

import math
from numbers import Real


class ThrottleError(ValueError):
    """A throttle rate outside (0, 1]."""


def validate_rate(rate: object) -> float:
    """The rate as a float, or ThrottleError when it is not a number in (0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, Real):
        raise ThrottleError(f"throttle rate must be a number in (0, 1], got {rate!r}")
    value = float(rate)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ThrottleError(f"throttle rate must be in (0, 1], got {rate!r}")
    return value


def effective_tpm(provider_tpm: float | None, rate: float) -> float | None:
    """The workspace's tokens per minute: `rate` of the provider's TPM.

    None when the provider's TPM is unknown (neither configured nor learned): a share of an
    unknown limit cannot be computed, so the workspace is not paced by the throttle.
    """
    share = validate_rate(rate)
    if provider_tpm is None:
        return None
    if not math.isfinite(provider_tpm) or provider_tpm <= 0:
        raise ThrottleError(f"provider TPM must be positive, got {provider_tpm!r}")
    return provider_tpm * share
