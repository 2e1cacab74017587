"""Widening pgoutput's 32-bit xids to 64-bit full transaction ids, across epoch boundaries."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dashcache.cdc.xids import MAX_DISTANCE, XID_SPAN, widen
from dashcache.errors import DashcacheError, XidOutOfRange

EPOCH = 7 << 32


@pytest.mark.parametrize(
    ("xid", "reference", "full"),
    [
        (1000, 1000, 1000),
        (1000, 1001, 1000),
        (1000, EPOCH | 5000, EPOCH | 1000),
        (1000, EPOCH | 1000, EPOCH | 1000),
        (XID_SPAN - 1, EPOCH | 3, EPOCH - 1),
        (XID_SPAN - 10, EPOCH | 20, EPOCH - 10),
        (XID_SPAN - 1, EPOCH - 1, EPOCH - 1),
        (3, EPOCH | 3, EPOCH | 3),
        (5, EPOCH | 100, EPOCH | 5),
        (XID_SPAN - 5, XID_SPAN + 10, XID_SPAN - 5),
        (100, EPOCH | (100 + MAX_DISTANCE - 1), EPOCH | 100),
        (XID_SPAN - 100, EPOCH | (MAX_DISTANCE - 101), EPOCH - 100),
        (XID_SPAN - 1, (1 << 64) - 1, (1 << 64) - 1),
    ],
)
def test_widen(xid: int, reference: int, full: int) -> None:
    """The full id is the one at or before the reference with the same low 32 bits, also when
    the transaction is in the epoch before the reference's."""
    assert widen(xid, reference) == full


@pytest.mark.parametrize(
    ("xid", "reference"),
    [
        (0, 1000),
        (1, 1000),
        (2, 1000),
        (XID_SPAN, EPOCH),
        (-1, EPOCH),
        (1000, -1),
        (1000, 1 << 64),
        (1000, 999),
        (XID_SPAN - 1, 5),
        (100, EPOCH | (100 + MAX_DISTANCE)),
        (XID_SPAN - 100, EPOCH | (MAX_DISTANCE - 100)),
    ],
)
def test_out_of_range_is_refused(xid: int, reference: int) -> None:
    """A special or out-of-range xid, a bad reference, or one too far after (or before) the
    transaction raises XidOutOfRange, a ValueError and a DashcacheError."""
    with pytest.raises(XidOutOfRange) as raised:
        widen(xid, reference)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, DashcacheError)


normal_full_ids = st.integers(min_value=3, max_value=(1 << 64) - 1).filter(
    lambda full: full % XID_SPAN >= 3
)


@given(full=normal_full_ids, distance=st.integers(min_value=0, max_value=MAX_DISTANCE - 1))
def test_widen_recovers_the_full_id(full: int, distance: int) -> None:
    """For any full id and any reference up to 2**31-1 after it, widening its low 32 bits
    gives it back."""
    reference = min(full + distance, (1 << 64) - 1)
    assert widen(full % XID_SPAN, reference) == full


@given(full=normal_full_ids, distance=st.integers(min_value=MAX_DISTANCE, max_value=XID_SPAN - 1))
def test_too_distant_reference_is_refused(full: int, distance: int) -> None:
    """A reference 2**31 or more (and less than an epoch) after the transaction is refused."""
    reference = full + distance
    assume(reference < 1 << 64)
    with pytest.raises(XidOutOfRange):
        widen(full % XID_SPAN, reference)
