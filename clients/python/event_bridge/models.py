"""Typed views of the API's answers.

Each model is a frozen dataclass built by ``from_dict``: known fields are typed (times
become aware ``datetime``), fields a newer gateway adds are ignored rather than
breaking the client, and ``raw`` keeps the whole JSON object.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Generic, List, Optional, Type, TypeVar

T = TypeVar("T", bound="Model")


def parse_time(value: Optional[str]) -> Optional[_dt.datetime]:
    """An RFC 3339 time (the gateway's are UTC with a ``Z``) as an aware datetime."""
    if value is None:
        return None
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(value)


@dataclass(frozen=True)
class Model:
    """Base of every answer type."""

    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
        values: Dict[str, Any] = {"raw": data}
        for f in dataclasses.fields(cls):
            if f.name == "raw" or f.name not in data:
                continue
            values[f.name] = _convert(hints[f.name], data[f.name])
        return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if hint is _dt.datetime:
        return parse_time(value)
    if origin in (list, List) and args:
        return [_convert(args[0], v) for v in value]
    if isinstance(hint, type) and issubclass(hint, Model) and isinstance(value, dict):
        return hint.from_dict(value)
    return value


@dataclass(frozen=True)
class License(Model):
    id: str = ""
    product: str = ""
    name: str = ""
    owner_email: str = ""
    status: str = ""
    key_prefix: str = ""
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None
    expires_at: Optional[_dt.datetime] = None
    machines_count: int = 0
    max_machines: Optional[int] = None
    entitlements: List[str] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)
    policy_id: Optional[str] = None
    require_machine: bool = False
    heartbeat_interval_secs: Optional[int] = None
    grace_period: Optional[str] = None
    grace_ends_at: Optional[_dt.datetime] = None
    expiry_strategy: str = ""
    expiry_basis: str = ""
    last_validated_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class IssuedLicense(License):
    """A licence just issued: ``key`` is shown this once."""

    key: str = ""


@dataclass(frozen=True)
class Machine(Model):
    id: str = ""
    license_id: str = ""
    fingerprint: str = ""
    name: Optional[str] = None
    platform: Optional[str] = None
    hostname: Optional[str] = None
    created_at: Optional[_dt.datetime] = None
    last_heartbeat_at: Optional[_dt.datetime] = None
    nonce: Optional[str] = None


@dataclass(frozen=True)
class Validation(Model):
    """``valid`` is true for ``valid``, ``grace_period`` and ``expired_maintained``."""

    valid: bool = False
    code: str = ""
    detail: str = ""
    license: Optional[License] = None
    grace_ends_at: Optional[_dt.datetime] = None
    nonce: Optional[str] = None


@dataclass(frozen=True)
class Checkout(Model):
    """A signed certificate for offline use (verify it with ``verify.Verifier``)."""

    certificate: str = ""
    kid: str = ""
    payload: Dict[str, Any] = field(default_factory=dict)
    nonce: Optional[str] = None


@dataclass(frozen=True)
class Deactivated(Model):
    deactivated: bool = False
    fingerprint: str = ""
    nonce: Optional[str] = None


@dataclass(frozen=True)
class PublishedKey(Model):
    kid: str = ""
    algorithm: str = ""
    public_key: str = ""
    public_key_pem: str = ""


@dataclass(frozen=True)
class PublicKey(PublishedKey):
    """The current key, and in ``keys`` every key whose certificates still verify."""

    keys: List[PublishedKey] = field(default_factory=list)


@dataclass(frozen=True)
class Policy(Model):
    id: str = ""
    product: str = ""
    name: str = ""
    max_machines: Optional[int] = None
    require_machine: bool = False
    heartbeat_interval_secs: Optional[int] = None
    heartbeat_cull: bool = False
    grace_period: Optional[str] = None
    expiry_strategy: str = ""
    expiry_basis: str = ""
    duration: Optional[str] = None
    entitlements: List[str] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)
    licenses_count: int = 0
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Accepted(Model):
    """A message queued (202): its id and status; follow it with ``get``."""

    id: str = ""
    status: str = ""
    replayed: bool = False


@dataclass(frozen=True)
class Email(Model):
    id: str = ""
    status: str = ""
    subject: Optional[str] = None
    to: List[str] = field(default_factory=list)
    cc: List[str] = field(default_factory=list)
    bcc: List[str] = field(default_factory=list)
    tags: Dict[str, str] = field(default_factory=dict)
    suppressed: List[str] = field(default_factory=list)
    provider_ids: List[str] = field(default_factory=list)
    error: Optional[str] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    size: int = 0
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None
    sent_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class SlackMessage(Model):
    id: str = ""
    channel: str = ""
    level: str = ""
    title: str = ""
    status: str = ""
    ts: Optional[str] = None
    thread_ts: Optional[str] = None
    error: Optional[str] = None
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None
    posted_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Blob(Model):
    namespace: str = ""
    key: str = ""
    size: int = 0
    etag: str = ""
    content_type: str = ""
    sha256: Optional[str] = None
    last_modified: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Presigned(Model):
    url: str = ""
    method: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    expires_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Document(Model):
    """A shared JSON document; ``version`` is its ETag (pass it as ``if_match``)."""

    id: str = ""
    version: int = 0
    data: Dict[str, Any] = field(default_factory=dict)
    created_at: Optional[_dt.datetime] = None
    updated_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class Event(Model):
    id: str = ""
    type: str = ""
    subject: Optional[str] = None
    actor: Optional[str] = None
    occurred_at: Optional[_dt.datetime] = None
    data: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiKey(Model):
    id: str = ""
    name: str = ""
    prefix: str = ""
    scopes: List[str] = field(default_factory=list)
    status: str = ""
    created_at: Optional[_dt.datetime] = None
    expires_at: Optional[_dt.datetime] = None
    last_used_at: Optional[_dt.datetime] = None
    revoked_at: Optional[_dt.datetime] = None


@dataclass(frozen=True)
class CreatedApiKey(ApiKey):
    """A key just created: ``key`` is shown this once."""

    key: str = ""


M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next (``None`` on
    the last). Folders (``common_prefixes``) are set for storage listings only."""

    items: List[M]
    next_cursor: Optional[str] = None
    common_prefixes: List[str] = field(default_factory=list)
