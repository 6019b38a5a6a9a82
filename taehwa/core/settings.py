"""Typed settings: `TAEHWA_*` environment variables over an optional TOML file over defaults, frozen once read."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from taehwa.core.errors import InvalidInput, ValidationFailed


class Settings(BaseSettings):
    """Everything an operator can configure; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TAEHWA_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        Path("taehwa-data"),
        validate_default=True,
        description="Where the historian's files and SQLite live (a "
        "relative path is taken from the folder the command starts in, once, when read).",
    )
    file_roots: str | None = Field(
        None,
        description="Folders, besides each tenant's own data_dir/tenants/<tenant>/files, that callers may name "
        "files in (lab specs, drop-folder connectors): comma-separated, each `FOLDER` (every tenant) or "
        "`TENANT=FOLDER` (that tenant only). Nothing inside data_dir may be named but a tenant's own files folder.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata database; default SQLite in data_dir."
    )
    historian_url: str | None = Field(
        None,
        description="Where the historian's Parquet files and manifests live: default data_dir/historian; a "
        "folder, or a pyarrow/fsspec URL such as s3://bucket/prefix?endpoint_override=host:9000&scheme=http "
        "(credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). The write-ahead log stays in data_dir.",
    )
    historian_cache_bytes: int = Field(
        2 << 30,
        ge=0,
        description="Local copies of remote historian files kept for queries (least recently used go first).",
    )
    writer_tenants: str | None = Field(
        None,
        description="Comma-separated tenants this process writes when several writers share one store "
        "(each tenant written by exactly one); unset: every tenant.",
    )
    public_url: str | None = Field(
        None,
        description="The URL other Taehwa nodes reach this one at; with writers by tenant it goes in this "
        "writer's leases, so the others pass its tenants' requests here. Default: http(s)://host:port as served.",
    )
    follow_url: str | None = Field(
        None,
        description="Serve as a reader node of the primary at this URL (http:// or https://): answer reads "
        "of points and tags here from the shared historian storage, pass everything else to it.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP service listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes behind the port: the first owns the writer, "
        "connectors and live scoring; the others answer reads and pass the rest to it.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS (with tls_key).")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    api_token: SecretStr | None = Field(
        None, description="Bearer token for the HTTP API; a development token is generated when unset."
    )
    max_body_bytes: int = Field(256 * 1024 * 1024, gt=0, description="Largest HTTP body accepted.")
    rate_limit_per_s: float = Field(
        100.0,
        gt=0,
        description="Requests per second one caller (user, or client address when anonymous) may make, sustained.",
    )
    rate_limit_burst: int = Field(400, ge=1, description="Requests one caller may make at once above the rate.")
    max_query_points: int = Field(50_000_000, gt=0, description="Most points one raw query may return.")
    earliest_time: str = Field("1970-01-01T00:00:00Z", description="Points before this are rejected.")
    future_tolerance_s: float = Field(
        86_400.0, ge=0, description="Points more than this many seconds in the future are rejected."
    )
    shared_data: Path | None = Field(
        None,
        description="Where the demo's and the benchmarks' data sets (SKAB, C-MAPSS, Tennessee Eastman) live; "
        "unset: `../shared/data` beside the checkout.",
    )
    ray_address: str | None = Field(
        None,
        description="A Ray cluster (e.g. `ray://head:10001`) that lab sweeps, lab runs and backfills fan out to "
        "unless told otherwise; unset: the local process pool (Ray when asked for starts a local instance).",
    )
    buffer_max_points: int = Field(
        500_000, gt=0, description="Small writes are buffered (durably) up to this many points, then flushed."
    )
    buffer_max_age_s: float = Field(30.0, gt=0, description="Buffered points are flushed after this long.")
    compact_after_s: float = Field(
        60.0, ge=0, description="A day partition untouched this long is compacted into one sorted file."
    )
    interpolation_lookback_s: float = Field(
        7 * 86_400.0, gt=0, description="How far back interpolation looks for a previous value."
    )
    default_retention_days: int | None = Field(
        None, gt=0, description="Retention for new tenants; None keeps data for ever."
    )
    stale_after_intervals: float = Field(
        3.0, gt=0, description="A signal is stale after this many expected sampling intervals without data."
    )
    event_buffer: int = Field(
        200_000, ge=1000, description="Twin change events kept in memory for clients that reconnect."
    )
    demo_speed: float = Field(
        60.0, gt=0, le=10_000, description="How many times faster than real time the demo plant replays its data sets."
    )
    demo_opcua_port: int = Field(
        4840, ge=0, le=65535, description="Loopback port of the demo's OPC UA replay server (0: any free port)."
    )
    duckdb_threads: int = Field(0, ge=0, description="DuckDB threads for queries; 0 means one per core.")
    academy_runners: int = Field(
        1,
        ge=1,
        le=64,
        description="Academy submissions run at once by the server, each in its own sandboxed process (one core each).",
    )
    audit_key_file: Path | None = Field(
        None,
        description="HMAC key of the audit chain (64 hex digits), made mode 0600 at first start; default "
        "data_dir/secrets/audit.key. Keep it outside data_dir (and out of its backups) so that whoever can change "
        "the data directory or the metadata database cannot re-sign the log.",
    )
    audit_checkpoint_every: int = Field(
        1000,
        ge=1,
        description="A signed checkpoint of the audit chain every this "
        "many entries (audit-checkpoints.jsonl beside audit-head.json).",
    )
    webhook_hosts: str | None = Field(
        None,
        description="Hosts webhooks may post to, comma-separated (`*.example.com` for a domain); `taehwa "
        "doctor` flags any other. Unset: it flags webhooks to loopback, private and link-local addresses.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once, so every path derived from it is absolute whatever folder a later step runs in."""
        return value.expanduser().resolve()

    @field_validator("file_roots")
    @classmethod
    def _check_file_roots(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for entry in (e.strip() for e in value.split(",")):
            folder = entry.split("=", 1)[1] if "=" in entry else entry
            if not folder or not Path(folder).is_absolute():
                raise ValueError(f"each file root is an absolute folder (or TENANT=FOLDER); got {entry!r}")
        return value

    @field_validator("follow_url", "public_url")
    @classmethod
    def _check_follow_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("the URL must start with http:// or https://")
        return value

    @field_validator("writer_tenants")
    @classmethod
    def _check_writer_tenants(cls, value: str | None) -> str | None:
        from taehwa.core.names import check_tenant

        if value is None:
            return None
        names = [v.strip() for v in value.split(",") if v.strip()]
        if not names:
            raise ValueError("name at least one tenant, or leave it unset")
        for name in names:
            try:
                check_tenant(name)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return ",".join(names)

    @property
    def writer_tenant_set(self) -> frozenset[str] | None:
        """The tenants this writer takes, or None for all."""
        return frozenset(self.writer_tenants.split(",")) if self.writer_tenants else None

    @field_validator("earliest_time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        from taehwa.core.timeutil import parse_time

        parse_time(value, field="earliest_time")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def fan_out(self) -> Literal["pool", "ray"]:
        """Where fanned-out jobs run unless a caller says: Ray when a cluster is named, else the process pool."""
        return "ray" if self.ray_address else "pool"

    @property
    def metadata_url(self) -> str:
        """The metadata database URL, SQLite inside the data directory unless set."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'metadata.sqlite').resolve()}"

    @property
    def audit_key_path(self) -> Path:
        """Where the audit chain's key is kept (the setting, or data_dir/secrets/audit.key)."""
        return self.audit_key_file or self.data_dir / "secrets" / "audit.key"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads `TAEHWA_CONFIG` (a TOML file) when it is set; its keys are the field names."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("TAEHWA_CONFIG")
        self._values: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as fh:
                    self._values = tomllib.load(fh)
            except FileNotFoundError as exc:
                raise InvalidInput("configuration file not found", where=path) from exc
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(f"not valid TOML: {exc}", where=path) from exc
            unknown = set(self._values) - set(settings_cls.model_fields)
            if unknown:
                raise InvalidInput(f"unknown settings {sorted(unknown)}", where=path)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; a bad value raises InvalidInput naming the setting."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = ValidationFailed.from_pydantic(exc, "").details[0]  # the first: one setting at a time
        name, message = (str(first.path[0]) if first.path else first.where), first.message
        raise InvalidInput(message, where=f"setting TAEHWA_{name.upper()}") from exc


def default_shared_data(settings: Settings | None = None) -> Path:
    """Where the data sets live: the settings' `shared_data` (TAEHWA_SHARED_DATA; the environment's settings
    when none are given), else `../shared/data` beside the checkout (as in CI)."""
    chosen = (settings or load_settings()).shared_data
    return chosen if chosen is not None else Path(__file__).resolve().parents[2].parent / "shared" / "data"
