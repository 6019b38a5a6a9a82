"""A connector is configuration, not code: protocol, endpoint, security and a mapping from source items to tags.

One YAML/JSON document per connector (or a list of them), checked as a whole before anything is stored; every
error names the field, e.g. `connectors[0].items[3].type`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from taehwa.core.errors import InvalidInput, ValidationFailed

NAME = r"^[a-z0-9][a-z0-9_.\-]{0,62}$"
PROTOCOLS = ("opcua", "mqtt", "modbus", "files")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Base(_Strict):
    name: str = Field(pattern=NAME, description="Unique within the tenant: lowercase letters, digits, . _ -")
    description: str | None = None
    enabled: bool = True
    tag_prefix: str = Field("", description="Put before every mapped tag name")


class OpcUaItem(_Strict):
    node: str = Field(min_length=1, description="Node id, e.g. ns=2;s=Reactor.Pressure or ns=2;i=1001")
    tag: str = Field(min_length=1, max_length=1024)
    sampling_ms: float = Field(1000.0, ge=0, le=3_600_000)
    deadband: float = Field(0.0, ge=0, description="Absolute deadband: changes smaller than this are not sent")
    queue_size: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Changes the server keeps per item between publishes (raise it for fast items and slow publishing)",
    )


class OpcUaConnector(_Base):
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: str | None = None  # our client certificate (PEM/DER) and its private key, for Basic256Sha256
    private_key: str | None = None
    server_certificate: str | None = None
    username: str | None = None
    password: str | None = None
    publish_ms: float = Field(500.0, gt=0, le=60_000)
    history_fill: bool = Field(
        True,
        description="After a reconnect, read the server's history (HistoryRead) for the "
        "values changed while disconnected",
    )
    history_fill_max_s: float = Field(86_400.0, gt=0, description="How far back a history fill reaches at most")
    items: list[OpcUaItem] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _security(self) -> OpcUaConnector:
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("security_policy Basic256Sha256 needs certificate and private_key")
        return self


class MqttItem(_Strict):
    topic: str = Field(min_length=1, max_length=1024, description="Topic filter; + and # wildcards allowed")
    format: Literal["json", "plain", "sparkplug"] = "json"
    tag: str | None = Field(
        None,
        description="Tag name template: {topic}, {1}.. (wildcard levels), {name} (JSON); "
        "for sparkplug {group}, {node}, {device}, {name} (the metric)",
    )
    qos: Literal[0, 1] = 1

    @field_validator("topic")
    @classmethod
    def _filter(cls, v: str) -> str:
        levels = v.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole level and the last one")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole level")
        return v

    @model_validator(mode="after")
    def _sparkplug_topic(self) -> MqttItem:
        if self.format == "sparkplug" and not self.topic.startswith("spBv1.0/"):
            raise ValueError("a sparkplug item's topic starts with spBv1.0/ (e.g. spBv1.0/plant1/#)")
        return self

    def template(self) -> str:
        if self.tag:
            return self.tag
        defaults = {"json": "{topic}/{name}", "plain": "{topic}", "sparkplug": "{group}/{node}/{device}/{name}"}
        return defaults[self.format]


class MqttConnector(_Base):
    protocol: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(None, description="Fixed id: the broker keeps QoS 1 messages while we are away")
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    sparkplug_rebirth: bool = Field(
        False,
        description="Ask a Sparkplug edge node for a new birth (NCMD Node "
        "Control/Rebirth) when its data uses an alias no birth declared",
    )
    own_process: bool = Field(
        True,
        description="Run the MQTT client in a process of its own, beside the server: "
        "decoding then uses a core the server's writes do not, and a fault in the client "
        "cannot stop the server. Off: a thread of the server.",
    )
    items: list[MqttItem] = Field(min_length=1, max_length=10_000)


ModbusType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64"]


class ModbusItem(_Strict):
    address: int = Field(ge=0, le=65535)
    kind: Literal["holding", "input"] = "holding"
    type: ModbusType = "uint16"
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    tag: str = Field(min_length=1, max_length=1024)

    def words(self) -> int:
        return {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}[self.type]


class ModbusConnector(_Base):
    protocol: Literal["modbus"]
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=247)
    poll_ms: float = Field(1000.0, ge=10, le=3_600_000)
    timeout_s: float = Field(3.0, gt=0, le=60)
    items: list[ModbusItem] = Field(min_length=1, max_length=10_000)


class FilesConnector(_Base):
    protocol: Literal["files"]
    folder: str = Field(
        min_length=1,
        max_length=4096,
        description="Drop folder watched for CSV/Parquet files: "
        "relative to the tenant's files folder, or one the operator allows (TAEHWA_FILE_ROOTS)",
    )
    pattern: str = Field(
        "*.csv",
        min_length=1,
        max_length=200,
        description="File names taken, as a shell pattern within the folder (no '/', no '**')",
    )
    layout: Literal["auto", "long", "wide"] = "auto"
    poll_s: float = Field(1.0, ge=0.05, le=3600)

    @field_validator("pattern")
    @classmethod
    def _one_folder(cls, value: str) -> str:
        """Only files directly in the drop folder: no path separators, no recursion, no climbing out."""
        if any(c in value for c in "/\\\x00") or "**" in value or value.strip(".") == "":
            raise ValueError("the pattern names files in the folder itself: no '/', '\\', '**' or '..'")
        return value


ConnectorSpec = Annotated[
    OpcUaConnector | MqttConnector | ModbusConnector | FilesConnector, Field(discriminator="protocol")
]
Connector = OpcUaConnector | MqttConnector | ModbusConnector | FilesConnector
_ADAPTER: TypeAdapter[Connector] = TypeAdapter(ConnectorSpec)
_LIST: TypeAdapter[list[Connector]] = TypeAdapter(list[ConnectorSpec])


def parse_connectors(doc: Any, *, source: str = "connectors") -> list[Connector]:
    """One connector document, a list of them, or {connectors: [...]}: all checked, names unique."""
    if isinstance(doc, dict) and "connectors" in doc and "protocol" not in doc:
        doc = doc["connectors"]
        root = f"{source}.connectors"
    else:
        root = source
    many = isinstance(doc, list)
    if not many and not isinstance(doc, dict):
        raise InvalidInput("a connector is a mapping with protocol, name and items (or a list of them)", where=root)
    if isinstance(doc, dict) and doc.get("protocol") not in ("opcua", "mqtt", "modbus", "files"):
        raise InvalidInput(
            f"protocol must be one of opcua, mqtt, modbus, files; got {doc.get('protocol')!r}", where=f"{root}.protocol"
        )
    try:
        found = _LIST.validate_python(doc) if many else [_ADAPTER.validate_python(doc)]
    except ValidationError as exc:
        # pydantic's union tag in the location left out: connectors[0].items[3].type
        raise ValidationFailed.from_pydantic(exc, root, brackets=True, skip=PROTOCOLS, doc=doc) from exc
    names = [c.name for c in found]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InvalidInput(f"connector name {dup!r} appears twice", where=root)
    return found


def item_tags(c: Connector) -> list[str]:
    """The fixed tag names a connector maps to (templated MQTT and file tags are known only from data)."""
    if isinstance(c, (OpcUaConnector, ModbusConnector)):
        return [c.tag_prefix + i.tag for i in c.items]
    return []


def topic_matches(pattern: str, topic: str) -> list[str] | None:
    """The levels matched by + and # in `pattern`, or None when `topic` does not match it (MQTT rules)."""
    p, t = pattern.split("/"), topic.split("/")
    caught: list[str] = []
    for i, level in enumerate(p):
        if level == "#":
            caught.append("/".join(t[i:]))
            return caught
        if i >= len(t):
            return None
        if level == "+":
            caught.append(t[i])
        elif level != t[i]:
            return None
    return caught if len(p) == len(t) else None


def render_tag(template: str, topic: str, caught: list[str], name: str = "") -> str:
    """A tag name from its template: {topic}, {1}, {2}… (the wildcard levels) and {name} (a JSON field)."""
    out = template.replace("{topic}", topic).replace("{name}", name)
    return re.sub(
        r"\{(\d+)\}", lambda m: caught[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(caught) else m.group(0), out
    )
