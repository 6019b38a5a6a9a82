"""Which way a figure is better (lower, higher, or neither) as every page shows it: the lab's rule for its metrics,
plus the counts of mistakes a page must never call better when they grow."""

from __future__ import annotations

from typing import Any

from taehwa.lab.validation import lower_is_better

# counts of mistakes read lower-is-better too (the lab's set names rates; a page must not call more false alarms better)
LOWER_COUNTS = {
    "fp",
    "fn",
    "false_alarms",
    "false_alarms_per_day",
    "flagged_share",
    "episodes_per_day",
    "alarm_episodes",
    "time_in_alarm_pct",
    "false_alarms_per_day_bound",
}
CONTEXT = {"events", "normal_hours", "rows", "units", "support"}  # how much data, not how good: no direction


def lower_better(metric: str) -> bool:
    """Whether a smaller figure of this metric is the better one, as the report and the registry show it."""
    return lower_is_better(metric) or metric in LOWER_COUNTS


def direction(metric: str, value: Any = 0.0) -> str:
    """Which way is better for a figure: lower, higher, or none (a count of data, a note in words)."""
    if metric in CONTEXT or isinstance(value, str | bool):
        return "none"
    return "lower" if lower_better(metric) else "higher"
