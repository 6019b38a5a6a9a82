"""The historian: every sensor time series, stored as Parquet and queried with DuckDB."""

from taehwa.historian.schema import Quality
from taehwa.historian.store import Historian

__all__ = ["Historian", "Quality"]
