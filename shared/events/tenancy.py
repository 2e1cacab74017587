"""Events must fit the deployment's tenancy: an account id on each email event when the schema
mapping has an account column, none when it has not (single-tenant)."""

from __future__ import annotations

from collections.abc import Sequence

from dashcache.errors import InvalidEvent
from dashcache.events.types import CategoriesChanged, Event


def check_tenancy(events: Sequence[Event], multi_tenant: bool) -> None:
    """Raise `InvalidEvent` (field `events[n].account_id`) for the first event that does not fit."""
    for n, event in enumerate(events):
        if isinstance(event, CategoriesChanged):
            continue
        field = f"events[{n}].account_id"
        if multi_tenant and event.account_id is None:
            raise InvalidEvent(
                f"{field} is required: the schema mapping has an [emails].account column",
                field=field,
            )
        if not multi_tenant and event.account_id is not None:
            raise InvalidEvent(
                f"{field} must be left out: the schema mapping has no [emails].account column "
                f"(single-tenant), got {event.account_id}",
                field=field,
            )
