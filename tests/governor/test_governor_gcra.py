"""GCRA properties on seeded random request sequences (hypothesis is not a dependency)."""

from __future__ import annotations

import random

import pytest

from mezzo.governor.limits import GcraResult, emission_interval, gcra, tat_from_remaining

EPS = 1e-6
SEEDS = range(25)


def _scenario(seed: int) -> tuple[random.Random, float, float]:
    rng = random.Random(seed)
    per_minute = rng.choice([6, 60, 600, 10_000, 150_000])
    burst = per_minute * rng.choice([1 / 60, 1 / 6, 0.5, 1.0])
    return rng, emission_interval(per_minute), max(1.0, burst)


def _run(seed: int, steps: int = 600) -> tuple[list[tuple[float, float]], float, float]:
    """Random arrivals of random costs (<= burst); returns the admitted (time, cost) pairs."""
    rng, interval, burst = _scenario(seed)
    tat, now, admitted = 0.0, 1000.0, []
    for _ in range(steps):
        now += rng.expovariate(1.0) * interval * rng.choice([0.1, 1, 5, 50])
        cost = rng.uniform(1, burst) if rng.random() < 0.5 else 1.0
        allowed, tat, _ = gcra(tat, now, interval, burst, cost)
        if allowed:
            admitted.append((now, cost))
    return admitted, interval, burst


@pytest.mark.parametrize("seed", SEEDS)
def test_no_window_admits_more_than_burst_plus_rate_times_length(seed: int) -> None:
    admitted, interval, burst = _run(seed)
    assert admitted
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, cost in admitted[i:]:
            total += cost
            assert total <= burst + (end - start) / interval + EPS


@pytest.mark.parametrize("seed", SEEDS)
def test_gcra_admits_exactly_what_a_token_bucket_of_size_burst_admits(seed: int) -> None:
    """Equivalent to a bucket holding `burst` units refilled at one unit per interval, which is
    how OpenAI (and mezzo's stub) enforce a limit: GCRA never sends what the bucket would
    refuse, and never refuses what it would admit."""
    rng, interval, burst = _scenario(seed)
    tat, now = 0.0, 1000.0
    level, updated = burst, now
    for _ in range(600):
        now += rng.expovariate(1.0) * interval * rng.choice([0.1, 1, 5, 50])
        cost = rng.uniform(1, burst) if rng.random() < 0.5 else 1.0
        level, updated = min(burst, level + (now - updated) / interval), now
        allowed, tat, _ = gcra(tat, now, interval, burst, cost)
        if allowed:
            assert level >= cost - EPS * burst
            level -= cost
        else:
            assert level < cost + EPS * burst


@pytest.mark.parametrize("seed", SEEDS)
def test_the_reported_wait_is_exact(seed: int) -> None:
    rng, interval, burst = _scenario(seed)
    tat, now = 0.0, 1000.0
    refusals = 0
    for _ in range(300):
        now += rng.expovariate(1.0) * interval * 0.2
        cost = rng.uniform(1, burst)
        allowed, new_tat, wait = gcra(tat, now, interval, burst, cost)
        if allowed:
            assert wait == 0.0
            tat = new_tat
            continue
        refusals += 1
        assert new_tat == tat and wait > 0
        if wait > 2 * EPS:
            assert not gcra(tat, now + wait * (1 - EPS), interval, burst, cost).allowed
        retry = gcra(tat, now + wait, interval, burst, cost)
        assert retry.allowed
        tat, now = retry.new_tat, now + wait
    assert refusals > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_client_retrying_at_each_wait_gets_the_full_rate(seed: int) -> None:
    """Liveness: the limiter does not under-admit a saturating client."""
    _, interval, burst = _scenario(seed)
    tat, start = 0.0, 1000.0
    now, taken = start, 0.0
    while now - start < 2000 * interval:
        cost = 1.0
        allowed, new_tat, wait = gcra(tat, now, interval, burst, cost)
        if allowed:
            tat, taken = new_tat, taken + cost
        else:
            now += wait
    expected = burst + (now - start) / interval
    assert expected - 1 - EPS * expected <= taken <= expected + EPS * expected


def test_burst_then_one_unit_per_interval() -> None:
    tat, now = 0.0, 100.0
    for _ in range(5):
        tat = gcra(tat, now, 2.0, 5.0).new_tat
    refused = gcra(tat, now, 2.0, 5.0)
    assert refused == GcraResult(False, tat, pytest.approx(2.0))
    assert gcra(tat, now + 2.0, 2.0, 5.0).allowed


def test_a_cost_above_burst_goes_only_when_the_key_is_idle() -> None:
    interval, burst = 1.0, 10.0
    fresh = gcra(0.0, 100.0, interval, burst, cost=25)
    assert fresh.allowed and fresh.new_tat == 125.0
    blocked = gcra(fresh.new_tat, 110.0, interval, burst, cost=25)
    assert not blocked.allowed and blocked.wait == pytest.approx(15.0)
    assert gcra(fresh.new_tat, 125.0, interval, burst, cost=25).allowed


def test_tat_from_remaining_mirrors_the_providers_bucket() -> None:
    interval, burst, now = 0.5, 100.0, 50.0
    assert tat_from_remaining(100, now, interval, burst) == now
    tat = tat_from_remaining(0, now, interval, burst)
    refused = gcra(tat, now, interval, burst)
    assert not refused.allowed and refused.wait == pytest.approx(interval)
    tat = tat_from_remaining(10, now, interval, burst)
    assert gcra(tat, now, interval, burst, cost=10).allowed
    assert not gcra(tat, now, interval, burst, cost=11).allowed


@pytest.mark.parametrize("seed", range(10))
def test_the_stub_llm_accepts_everything_gcra_admits(seed: int) -> None:
    """The stub refuses like OpenAI (a bucket of `tpm` tokens); GCRA with that burst never
    sends it a request it would answer with 429."""
    from mezzo.stub.limits import RateLimits

    rng = random.Random(seed)
    tpm = rng.choice([1_000, 30_000, 150_000])
    stub = RateLimits(rpm=None, tpm=tpm)
    interval, burst = emission_interval(tpm), float(tpm)
    tat, now, admitted = 0.0, 0.0, 0
    for _ in range(400):
        now += rng.expovariate(1.0) * rng.choice([0.01, 0.5, 3.0])
        tokens = rng.randint(1, tpm // 4)
        allowed, tat, _ = gcra(tat, now, interval, burst, tokens)
        if allowed:
            admitted += 1
            assert stub.acquire("key", tokens, now).allowed
    assert admitted > 10
