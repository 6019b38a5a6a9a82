"""Inline SVG icons (stroke drawings on a 24-unit grid, drawn for Taehwa; no icon font, nothing fetched). Each is
decorative (aria-hidden): the word beside it carries the meaning."""

from __future__ import annotations

from markupsafe import Markup

PATHS: dict[str, str] = {
    "tower": '<path d="M12 3v18M8 21h8M6 8a8 8 0 0 1 12 0M3.5 5a12 12 0 0 1 17 0"/><circle cx="12" cy="11" r="2"/>',
    "plant": '<path d="M3 21V10l5 3V10l5 3V6l8 4v11z"/><path d="M7 17h2M12 17h2M17 17h2"/>',
    "trends": '<path d="M3 3v18h18"/><path d="M7 15l4-5 3 3 6-7"/>',
    "alerts": '<path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4z"/><path d="M10 21h4"/>',
    "models": (
        '<rect x="4" y="4" width="16" height="16" rx="3"/><path d="M9 9h6v6H9z"/>'
        '<path d="M9 2v2M15 2v2M9 20v2M15 20v2M2 9h2M2 15h2M20 9h2M20 15h2"/>'
    ),
    "connectors": '<path d="M9 7V3M15 7V3M7 7h10v4a5 5 0 0 1-10 0z"/><path d="M12 16v5"/>',
    "academy": '<path d="M2 9l10-5 10 5-10 5z"/><path d="M6 11v5c3 2 9 2 12 0v-5"/>',
    "user": '<circle cx="12" cy="8" r="4"/><path d="M4 21a8 8 0 0 1 16 0"/>',
    "chevron": '<path d="M6 9l6 6 6-6"/>',
    "search": '<circle cx="11" cy="11" r="7"/><path d="M20 20l-4-4"/>',
    "download": '<path d="M12 3v12M7 10l5 5 5-5M4 21h16"/>',
    "check": '<path d="M4 12l5 5L20 6"/>',
    "info": '<circle cx="12" cy="12" r="9"/><path d="M12 11v6M12 7.5v.5"/>',
    "asset": (
        '<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M5 5l2 2M17 17l2 2M5 19l2-2M17 7l2-2"/>'
    ),
    "fleet": (
        '<rect x="3" y="3" width="7" height="7" rx="1"/><rect x="14" y="3" width="7" height="7" rx="1"/>'
        '<rect x="3" y="14" width="7" height="7" rx="1"/><rect x="14" y="14" width="7" height="7" rx="1"/>'
    ),
    "empty": '<path d="M3 7l9-4 9 4v10l-9 4-9-4z"/><path d="M3 7l9 4 9-4M12 11v10"/>',
    "rate": '<path d="M3 12h4l3-8 4 16 3-8h4"/>',
    "operations": '<path d="M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12M20 18h0"/><circle cx="16" cy="6" r="2"/>'
    '<circle cx="10" cy="12" r="2"/><circle cx="18" cy="18" r="2"/>',
    "admin": '<path d="M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z"/><path d="M9 12l2 2 4-4"/>',
}


def icon(name: str, label: str | None = None) -> Markup:
    """An inline SVG icon; decorative unless a label is given."""
    body = PATHS.get(name, PATHS["info"])
    a11y = f'role="img" aria-label="{Markup.escape(label)}"' if label else 'aria-hidden="true" focusable="false"'
    return Markup(f'<svg class="icon" viewBox="0 0 24 24" {a11y}>{body}</svg>')
