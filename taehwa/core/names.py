"""Names a caller gives: tenant ids and tag names, checked once by one rule that every layer shares."""

from __future__ import annotations

import re

from taehwa.core.errors import InvalidInput

TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,254}$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
RULE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")  # an alert rule's name
MAX_LABEL_KIND = 64


def label_kind_ok(kind: str) -> bool:
    """A label kind is 1-64 letters (any script), digits, '-', '_' or '.'."""
    return (
        isinstance(kind, str)
        and 0 < len(kind) <= MAX_LABEL_KIND
        and kind.replace("_", "").replace("-", "").replace(".", "").isalnum()
    )


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
