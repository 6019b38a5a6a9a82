"""Names a caller gives: tenant ids and tag names, checked once by one rule that every layer shares."""

from __future__ import annotations

import re

from taehwa.core.errors import InvalidInput

TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,254}$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")


def check_tag(tag: str, *, where: str = "tag") -> str:
    """A tag is 1-255 characters of letters, digits and _ . : / -, not starting with a separator."""
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag) or "//" in tag or tag.endswith("/"):
        raise InvalidInput(
            f"invalid tag {tag!r}: use letters, digits and _ . : / - (e.g. refinery/cdu/P-101/flow)",
            where=where,
        )
    return tag


def check_tenant(tenant: str) -> str:
    """A tenant id is lower-case letters, digits and dashes, as it appears in paths and URLs."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise InvalidInput(f"invalid tenant id {tenant!r}: use 1-63 lower-case letters, digits and '-'", where="tenant")
    return tenant
