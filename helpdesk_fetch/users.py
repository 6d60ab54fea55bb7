"""Users by name, for the lines that say who owns a file and who runs the tool."""

from __future__ import annotations

import pwd


def user_name(uid: int) -> str | None:
    """The name of user *uid*, or None when the system has no such user."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def user_or_uid(uid: int) -> str:
    """The name of user *uid*, or the number where it has none: what a ``chown`` takes."""
    return user_name(uid) or str(uid)
