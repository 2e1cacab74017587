"""Building HTML where every data string is escaped by construction (the status page's only
way to write markup)."""

from __future__ import annotations

from html import escape


class Html(str):
    """Markup that is already safe: made by `tag` (or a constant of the code, never data)."""

    __slots__ = ()


Child = Html | str | int | float | None


def tag(name: str, *children: Child, **attrs: str | int | float | None) -> Html:
    """`<name attrs>children</name>`; text children and attribute values are escaped.

    Attribute names come from the code: a trailing `_` is dropped (`class_`), `_` becomes `-`.
    """
    rendered = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(str(value), quote=True)}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Html(f"<{name}{rendered}>{join(*children)}</{name}>")


def join(*children: Child) -> Html:
    """Children side by side: markup kept, anything else escaped, None left out."""
    return Html(
        "".join(
            child if isinstance(child, Html) else escape(str(child))
            for child in children
            if child is not None
        )
    )
