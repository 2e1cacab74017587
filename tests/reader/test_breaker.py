"""The circuit breaker's state machine, driven with explicit times."""

from dashcache.reader.breaker import CircuitBreaker, State


def test_opens_after_consecutive_failures_only() -> None:
    """A success resets the count; the threshold of failures in a row opens the breaker."""
    breaker = CircuitBreaker(failures=3, reset_seconds=5)
    assert not breaker.failed(now=0)
    assert not breaker.failed(now=0)
    breaker.succeeded()
    assert not breaker.failed(now=1)
    assert not breaker.failed(now=1)
    assert breaker.failed(now=1)
    assert breaker.state is State.OPEN
    assert not breaker.allows(now=2)


def test_one_trial_after_reset_then_closes_on_success() -> None:
    """After reset_seconds one call is let through; its success closes the breaker."""
    breaker = CircuitBreaker(failures=1, reset_seconds=5)
    breaker.failed(now=0)
    assert not breaker.allows(now=4.9)
    assert breaker.allows(now=5)
    assert breaker.state is State.HALF_OPEN
    assert not breaker.allows(now=5.1)
    assert breaker.succeeded()
    assert breaker.state is State.CLOSED
    assert breaker.allows(now=5.2)
    assert not breaker.succeeded()


def test_failed_trial_opens_again_for_another_period() -> None:
    """A failing trial re-opens the breaker, counted from the trial's failure."""
    breaker = CircuitBreaker(failures=3, reset_seconds=5)
    for _ in range(3):
        breaker.failed(now=0)
    assert breaker.allows(now=6)
    assert breaker.failed(now=6.5)
    assert not breaker.allows(now=11)
    assert breaker.allows(now=11.5)


def test_trial_that_never_reports_does_not_wedge() -> None:
    """If the trial call never reports back, another trial is allowed a period later."""
    breaker = CircuitBreaker(failures=1, reset_seconds=5)
    breaker.failed(now=0)
    assert breaker.allows(now=5)
    assert not breaker.allows(now=9)
    assert breaker.allows(now=10)
