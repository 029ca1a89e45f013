"""The API's sections. Each method describes its request once; the sync ``Client`` runs
it and returns the typed answer, the ``AsyncClient`` returns an awaitable of the same."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union
from urllib.parse import quote

import httpx

from ._core import Call, new_nonce, page_of
from ._multipart import DEFAULT_THRESHOLD, Job, upload_path
from ._core import idempotency_key as _idempotency_key
from .models import (
    Accepted,
    ApiKey,
    Blob,
    Checkout,
    CreatedApiKey,
    Deactivated,
    Document,
    Email,
    Event,
    IssuedLicense,
    License,
    Machine,
    Policy,
    Presigned,
    PublicKey,
    SlackMessage,
    Validation,
)

Progress = Callable[[int, Optional[int]], None]
Source = Union[str, "os.PathLike[str]", bytes, Any]

API = "/api/v1"


def _seg(value: str) -> str:
    """One path segment, percent-encoded (a storage key keeps its slashes)."""
    return quote(str(value), safe="")


def _key_path(key: str) -> str:
    return quote(key, safe="/")


def _time(value: Optional[Union[str, _dt.datetime]]) -> Optional[str]:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise ValueError("give an aware datetime (with a time zone)")
        return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def _body(**fields: Any) -> Dict[str, Any]:
    """A JSON body without the fields left at ``None``."""
    return {k: (_time(v) if isinstance(v, _dt.datetime) else v) for k, v in fields.items() if v is not None}


def _model(cls: Any) -> Callable[[httpx.Response], Any]:
    return lambda r: cls.from_dict(r.json())


def _accepted(r: httpx.Response) -> Accepted:
    data = r.json()
    return Accepted.from_dict({**data, "replayed": r.headers.get("idempotent-replayed") == "true"})


def _none(_: httpx.Response) -> None:
    return None


class _Section:
    def __init__(self, client: Any):
        self._c = client


class Licenses(_Section):
    """Licences: administration (``licenses:admin``, ``licenses:read``) and the
    licence-holder calls, authenticated by the licence key. With a ``verifier`` on the
    client, every holder answer is checked against its ``EB-Signature`` and a fresh nonce."""

    def issue(
        self,
        product: str,
        name: str,
        owner_email: str,
        *,
        duration: Optional[str] = None,
        expires_at: Optional[_dt.datetime] = None,
        max_machines: Optional[int] = None,
        entitlements: Optional[Sequence[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        policy_id: Optional[str] = None,
        **terms: Any,
    ) -> IssuedLicense:
        """Issues a licence; its ``key`` is in this answer only."""
        body = _body(
            product=product,
            name=name,
            owner_email=owner_email,
            duration=duration,
            expires_at=expires_at,
            max_machines=max_machines,
            entitlements=list(entitlements) if entitlements is not None else None,
            metadata=metadata,
            policy_id=policy_id,
            **terms,
        )
        return self._c._run(Call("POST", f"{API}/licenses", json=body, parse=_model(IssuedLicense)))

    def get(self, license_id: str) -> License:
        return self._c._run(Call("GET", f"{API}/licenses/{_seg(license_id)}", parse=_model(License), retry=True))

    def list(self, **filters: Any) -> Any:
        """One page: ``product``, ``status``, ``owner_email``, ``expires_before``,
        ``limit``, ``cursor``, ``order``."""
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        """Every licence matching the filters, page after page."""
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        params = {k: _time(v) for k, v in filters.items()}
        return Call("GET", f"{API}/licenses", params=params, parse=page_of(License), retry=True)

    def update(self, license_id: str, **changes: Any) -> License:
        """Changes terms (``name``, ``max_machines``, ``expires_at``, ``policy_id``...);
        ``None`` clears a term back to its policy's."""
        body = {k: _time(v) for k, v in changes.items()}
        return self._c._run(Call("PATCH", f"{API}/licenses/{_seg(license_id)}", json=body, parse=_model(License)))

    def _action(self, license_id: str, action: str, body: Any = None) -> License:
        return self._c._run(
            Call("POST", f"{API}/licenses/{_seg(license_id)}/{action}", json=body, parse=_model(License))
        )

    def suspend(self, license_id: str) -> License:
        return self._action(license_id, "suspend")

    def reinstate(self, license_id: str) -> License:
        return self._action(license_id, "reinstate")

    def revoke(self, license_id: str) -> License:
        return self._action(license_id, "revoke")

    def renew(self, license_id: str, *, duration: Optional[str] = None, expires_at: Optional[_dt.datetime] = None) -> License:
        return self._action(license_id, "renew", _body(duration=duration, expires_at=expires_at))

    def machines(self, license_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Any:
        params = {"limit": limit, "cursor": cursor}
        return self._c._run(
            Call("GET", f"{API}/licenses/{_seg(license_id)}/machines", params=params, parse=page_of(Machine), retry=True)
        )

    def remove_machine(self, license_id: str, machine_id: str) -> None:
        path = f"{API}/licenses/{_seg(license_id)}/machines/{_seg(machine_id)}"
        return self._c._run(Call("DELETE", path, parse=_none, retry=True))

    def public_key(self) -> PublicKey:
        """The keys that verify certificates and signed answers (no API key needed)."""
        return self._c._run(Call("GET", f"{API}/licenses/public-key", parse=_model(PublicKey), retry=True))

    def _holder(self, action: str, body: Dict[str, Any], parse: Callable[[httpx.Response], Any]) -> Any:
        nonce = new_nonce() if self._c.verifier is not None else None
        call = Call("POST", f"{API}/licenses/{action}", json=_body(nonce=nonce, **body), parse=parse, holder=True)
        call.nonce = nonce
        # Validation, heartbeats and check-outs change nothing twice: safe to retry.
        call.retry = action in ("validate", "heartbeat", "checkout")
        return self._c._run(call)

    def validate(
        self,
        key: str,
        *,
        fingerprint: Optional[str] = None,
        product: Optional[str] = None,
        entitlements: Optional[Sequence[str]] = None,
    ) -> Validation:
        """The licence's state for this machine: ``valid`` and an exact ``code``."""
        body = {"key": key, "fingerprint": fingerprint, "product": product}
        if entitlements:
            body["entitlements"] = list(entitlements)
        return self._holder("validate", body, _model(Validation))

    def activate(
        self,
        key: str,
        fingerprint: str,
        *,
        name: Optional[str] = None,
        platform: Optional[str] = None,
        hostname: Optional[str] = None,
    ) -> Machine:
        """Takes a seat for this machine (``too_many_machines`` when none is free)."""
        body = {"key": key, "fingerprint": fingerprint, "name": name, "platform": platform, "hostname": hostname}
        return self._holder("activate", body, _model(Machine))

    def heartbeat(self, key: str, fingerprint: str) -> Machine:
        return self._holder("heartbeat", {"key": key, "fingerprint": fingerprint}, _model(Machine))

    def deactivate(self, key: str, fingerprint: str) -> Deactivated:
        """Frees this machine's seat."""

        def parse(r: httpx.Response) -> Deactivated:
            if r.status_code == 204 or not r.content:
                return Deactivated.from_dict({"deactivated": True, "fingerprint": fingerprint})
            return Deactivated.from_dict(r.json())

        return self._holder("deactivate", {"key": key, "fingerprint": fingerprint}, parse)

    def checkout(self, key: str, *, fingerprint: Optional[str] = None, ttl: Optional[str] = None) -> Checkout:
        """A signed certificate for offline use (``ttl`` such as ``7d``)."""
        return self._holder("checkout", {"key": key, "fingerprint": fingerprint, "ttl": ttl}, _model(Checkout))


class Policies(_Section):
    """Reusable licence terms."""

    def create(self, product: str, name: str, **terms: Any) -> Policy:
        return self._c._run(
            Call("POST", f"{API}/policies", json=_body(product=product, name=name, **terms), parse=_model(Policy))
        )

    def get(self, policy_id: str) -> Policy:
        return self._c._run(Call("GET", f"{API}/policies/{_seg(policy_id)}", parse=_model(Policy), retry=True))

    def list(self, **filters: Any) -> Any:
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        return Call("GET", f"{API}/policies", params=filters, parse=page_of(Policy), retry=True)

    def update(self, policy_id: str, **changes: Any) -> Policy:
        return self._c._run(Call("PATCH", f"{API}/policies/{_seg(policy_id)}", json=changes, parse=_model(Policy)))

    def delete(self, policy_id: str) -> None:
        return self._c._run(Call("DELETE", f"{API}/policies/{_seg(policy_id)}", parse=_none, retry=True))


def attachment(filename: str, content: bytes, content_type: Optional[str] = None, content_id: Optional[str] = None) -> Dict[str, Any]:
    """An email attachment from bytes (base64-encoded for the request)."""
    return _body(
        filename=filename,
        content_base64=base64.b64encode(content).decode("ascii"),
        content_type=content_type,
        content_id=content_id,
    )


class Emails(_Section):
    """Email through the outbox (``emails:send``, ``emails:read``)."""

    def send(
        self,
        to: Union[str, Sequence[str]],
        *,
        subject: Optional[str] = None,
        text: Optional[str] = None,
        html: Optional[str] = None,
        sender: Optional[str] = None,
        cc: Optional[Sequence[str]] = None,
        bcc: Optional[Sequence[str]] = None,
        reply_to: Optional[Sequence[str]] = None,
        template: Optional[str] = None,
        variables: Optional[Dict[str, Any]] = None,
        attachments: Optional[List[Dict[str, Any]]] = None,
        tags: Optional[Dict[str, str]] = None,
        headers: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Accepted:
        """Queues a message (202). A retry, by this client or by you with the same
        ``idempotency_key``, never sends it twice."""
        body = _body(
            to=[to] if isinstance(to, str) else list(to),
            subject=subject,
            text=text,
            html=html,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            attachments=attachments,
            tags=tags,
            headers=headers,
        )
        if sender is not None:
            body["from"] = sender
        if template is not None:
            body["template"] = {"name": template, "variables": variables or {}}
        return self._submit(f"{API}/emails", body, idempotency_key, _accepted)

    def send_batch(self, messages: Sequence[Dict[str, Any]], *, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Queues up to 100 messages at once (each as the JSON ``send`` takes)."""
        return self._submit(f"{API}/emails/batch", list(messages), idempotency_key, lambda r: r.json())

    def _submit(self, path: str, body: Any, key: Optional[str], parse: Callable[[httpx.Response], Any]) -> Any:
        headers = {"Idempotency-Key": _idempotency_key(key)}
        return self._c._run(Call("POST", path, json=body, headers=headers, parse=parse, retry=True))

    def get(self, email_id: str) -> Email:
        return self._c._run(Call("GET", f"{API}/emails/{_seg(email_id)}", parse=_model(Email), retry=True))

    def raw(self, email_id: str) -> bytes:
        """The message as MIME (``message/rfc822``)."""
        return self._c._run(Call("GET", f"{API}/emails/{_seg(email_id)}/raw", parse=lambda r: r.content, retry=True))

    def list(self, **filters: Any) -> Any:
        """``status``, ``from``, ``template``, ``batch_id``, ``limit``, ``cursor``, ``order``."""
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        return Call("GET", f"{API}/emails", params=filters, parse=page_of(Email), retry=True)


class Slack(_Section):
    """Slack alerts (``slack:post``, ``slack:read``)."""

    def post(
        self,
        level: str,
        title: str,
        *,
        text: Optional[str] = None,
        channel: Optional[str] = None,
        fields: Optional[Sequence[Dict[str, str]]] = None,
        links: Optional[Sequence[Dict[str, str]]] = None,
        thread_of: Optional[str] = None,
        source: Optional[str] = None,
        environment: Optional[str] = None,
        mention: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Accepted:
        """Queues a message (202); ``thread_of`` replies under another message."""
        body = _body(
            level=level,
            title=title,
            text=text,
            channel=channel,
            fields=list(fields) if fields else None,
            links=list(links) if links else None,
            thread_of=thread_of,
            source=source,
            environment=environment,
            mention=mention,
        )
        headers = {"Idempotency-Key": _idempotency_key(idempotency_key)}
        return self._c._run(Call("POST", f"{API}/slack/messages", json=body, headers=headers, parse=_accepted, retry=True))

    def get(self, message_id: str) -> SlackMessage:
        return self._c._run(Call("GET", f"{API}/slack/messages/{_seg(message_id)}", parse=_model(SlackMessage), retry=True))

    def update(self, message_id: str, **changes: Any) -> Accepted:
        """Edits a posted message (``title``, ``text``, ``level``, ``fields``...)."""
        path = f"{API}/slack/messages/{_seg(message_id)}"
        return self._c._run(Call("PATCH", path, json=changes, parse=_accepted))

    def preview(self, level: str, title: str, **message: Any) -> Dict[str, Any]:
        """The Block Kit the message would be posted as."""
        body = _body(level=level, title=title, **message)
        return self._c._run(Call("POST", f"{API}/slack/preview", json=body, retry=True))

    def list(self, **filters: Any) -> Any:
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        return Call("GET", f"{API}/slack/messages", params=filters, parse=page_of(SlackMessage), retry=True)


def _sha256_of_file(path: Union[str, "os.PathLike[str]"]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Blobs(_Section):
    """Shared storage (``blobs:read:<ns>``, ``blobs:write:<ns>``). Transfers stream: a
    file of any size goes up and down without being held in memory."""

    CHUNK = 1 << 20

    def upload(
        self,
        namespace: str,
        key: str,
        source: Source,
        *,
        content_type: Optional[str] = None,
        if_match: Optional[str] = None,
        if_none_match: Optional[str] = None,
        progress: Optional[Progress] = None,
        multipart_threshold: int = DEFAULT_THRESHOLD,
        part_size: Optional[int] = None,
        upload_id: Optional[str] = None,
    ) -> Blob:
        """Stores ``source`` (a path, bytes or a binary file) at ``key``. A path's
        SHA-256 is sent along (``x-checksum-sha256``), so the gateway refuses a body
        corrupted on the way. ``if_none_match="*"`` refuses to overwrite.

        A path or bytes larger than ``multipart_threshold`` (16 MiB) go up in parts of
        ``part_size`` bytes (5 MiB to 5 GiB; the gateway's default is 8 MiB), each
        ``PUT`` straight to its own URL and checked against its MD5; ``progress`` is
        called after each part. If the upload fails, the exception carries the upload's
        id as ``upload_id``: call ``upload`` again with the same source and
        ``upload_id=`` to send only the parts the storage lacks. (Conditions, ``if_match``
        and ``if_none_match``, need a single ``PUT``.)"""
        multipart_source = isinstance(source, (bytes, bytearray, str, os.PathLike))
        if upload_id and (not multipart_source or if_match or if_none_match):
            raise ValueError("upload_id resumes an upload of a path or bytes, without if_match / if_none_match")
        if multipart_source and not (if_match or if_none_match):
            size_now = len(source) if isinstance(source, (bytes, bytearray)) else os.path.getsize(source)
            if upload_id or size_now > multipart_threshold:
                digest = (
                    hashlib.sha256(source).hexdigest()
                    if isinstance(source, (bytes, bytearray))
                    else _sha256_of_file(source)
                )
                job = Job(namespace, key, source, size_now, digest, content_type, part_size, upload_id, progress)
                return self._c._multipart(job, _model(Blob))
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if if_match:
            headers["If-Match"] = if_match
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        if isinstance(source, (bytes, bytearray)):
            size: Optional[int] = len(source)
            headers["x-checksum-sha256"] = hashlib.sha256(source).hexdigest()
        elif isinstance(source, (str, os.PathLike)):
            size = os.path.getsize(source)
            headers["x-checksum-sha256"] = _sha256_of_file(source)
        else:
            size = None
        if size is not None:
            headers["Content-Length"] = str(size)
        call = Call("PUT", f"{API}/blobs/{_seg(namespace)}/{_key_path(key)}", headers=headers, parse=_model(Blob))
        return self._c._upload(call, source, size, progress)

    def get_upload(self, namespace: str, upload_id: str) -> Dict[str, Any]:
        """A multipart upload in progress: ``received`` lists the parts the storage holds."""
        return self._c._run(Call("GET", upload_path(namespace, upload_id), retry=True))

    def abort_upload(self, namespace: str, upload_id: str) -> None:
        """Aborts a multipart upload; its parts are dropped."""
        return self._c._run(Call("DELETE", upload_path(namespace, upload_id), parse=_none, retry=True))

    def download(
        self,
        namespace: str,
        key: str,
        dest: Optional[Union[str, "os.PathLike[str]", Any]] = None,
        *,
        progress: Optional[Progress] = None,
    ) -> Any:
        """The object's bytes, or with ``dest`` (a path or a binary file) written there
        as it arrives; then the answer's headers are returned. A path is written to a
        temporary file beside it first, so a broken download never leaves half a file,
        and the result is checked against the object's SHA-256 (``x-checksum-sha256``)."""
        call = Call("GET", f"{API}/blobs/{_seg(namespace)}/{_key_path(key)}", retry=True)
        return self._c._download(call, dest, progress)

    def head(self, namespace: str, key: str) -> Dict[str, str]:
        """The object's headers (size, type, ETag) without its body."""
        path = f"{API}/blobs/{_seg(namespace)}/{_key_path(key)}"
        return self._c._run(Call("HEAD", path, parse=lambda r: dict(r.headers), retry=True))

    def delete(self, namespace: str, key: str, *, if_match: Optional[str] = None) -> None:
        headers = {"If-Match": if_match} if if_match else {}
        path = f"{API}/blobs/{_seg(namespace)}/{_key_path(key)}"
        return self._c._run(Call("DELETE", path, headers=headers, parse=_none, retry=True))

    def list(self, namespace: str, **filters: Any) -> Any:
        """One page: ``prefix``, ``delimiter`` (``/`` for folders), ``limit``, ``cursor``."""
        return self._c._run(self._list(namespace)(filters))

    def iter(self, namespace: str, **filters: Any) -> Any:
        return self._c._paginate(self._list(namespace), filters)

    def _list(self, namespace: str) -> Callable[[Dict[str, Any]], Call]:
        def call(filters: Dict[str, Any]) -> Call:
            path = f"{API}/blobs/{_seg(namespace)}"
            return Call("GET", path, params=filters, parse=page_of(Blob, "objects"), retry=True)

        return call

    def presign(
        self,
        namespace: str,
        key: str,
        *,
        method: str = "GET",
        expires_in: Optional[int] = None,
        content_length: Optional[int] = None,
        content_type: Optional[str] = None,
    ) -> Presigned:
        """A URL for one direct GET or PUT without an API key (for a browser or a peer)."""
        body = _body(key=key, method=method, expires_in=expires_in, content_length=content_length, content_type=content_type)
        return self._c._run(Call("POST", f"{API}/blobs/{_seg(namespace)}/presign", json=body, parse=_model(Presigned)))


class Data(_Section):
    """Shared JSON documents with versions: pass a document's ``version`` as
    ``if_match`` and a concurrent change makes the write fail with 412."""

    def _path(self, collection: str, doc_id: str) -> str:
        return f"{API}/data/{_seg(collection)}/{_seg(doc_id)}"

    def get(self, collection: str, doc_id: str) -> Document:
        return self._c._run(Call("GET", self._path(collection, doc_id), parse=_document, retry=True))

    def put(
        self,
        collection: str,
        doc_id: str,
        data: Dict[str, Any],
        *,
        if_match: Optional[Union[int, str]] = None,
        if_none_match: Optional[str] = None,
    ) -> Document:
        """Creates or replaces; ``if_none_match="*"`` only creates."""
        headers = _conditions(if_match, if_none_match)
        return self._c._run(Call("PUT", self._path(collection, doc_id), json=data, headers=headers, parse=_document))

    def patch(self, collection: str, doc_id: str, patch: Dict[str, Any], *, if_match: Optional[Union[int, str]] = None) -> Document:
        """A JSON Merge Patch (RFC 7396): ``None`` removes a member."""
        headers = {"Content-Type": "application/merge-patch+json", **_conditions(if_match, None)}
        call = Call("PATCH", self._path(collection, doc_id), headers=headers, parse=_document)
        call.content = _json_bytes(patch)
        return self._c._run(call)

    def delete(self, collection: str, doc_id: str, *, if_match: Optional[Union[int, str]] = None) -> None:
        headers = _conditions(if_match, None)
        return self._c._run(Call("DELETE", self._path(collection, doc_id), headers=headers, parse=_none, retry=True))

    def list(self, collection: str, **filters: Any) -> Any:
        return self._c._run(self._list(collection)(filters))

    def iter(self, collection: str, **filters: Any) -> Any:
        return self._c._paginate(self._list(collection), filters)

    def _list(self, collection: str) -> Callable[[Dict[str, Any]], Call]:
        def call(filters: Dict[str, Any]) -> Call:
            return Call("GET", f"{API}/data/{_seg(collection)}", params=filters, parse=page_of(Document), retry=True)

        return call


def _json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value).encode("utf-8")


def _conditions(if_match: Optional[Union[int, str]], if_none_match: Optional[str]) -> Dict[str, str]:
    headers = {}
    if if_match is not None:
        tag = str(if_match)
        headers["If-Match"] = tag if tag.startswith('"') or tag == "*" else f'"{tag}"'
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return headers


def _document(r: httpx.Response) -> Document:
    return Document.from_dict(r.json())


class Events(_Section):
    """The audit trail (``events:read``)."""

    def list(self, **filters: Any) -> Any:
        """``type``, ``subject``, ``since``, ``until``, ``limit``, ``cursor``, ``order``."""
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        params = {k: _time(v) for k, v in filters.items()}
        return Call("GET", f"{API}/events", params=params, parse=page_of(Event), retry=True)

    def stream(self, *, last_event_id: Optional[str] = None, **filters: Any) -> Any:
        """The live tail (Server-Sent Events) as an iterator of :class:`Event`; it
        reconnects after a drop and resumes after the last event seen."""
        params = {k: _time(v) for k, v in filters.items()}
        return self._c._events(f"{API}/events/stream", params, last_event_id)


class ApiKeys(_Section):
    """API keys (``api-keys:admin``)."""

    def create(self, name: str, scopes: Sequence[str], *, expires_at: Optional[_dt.datetime] = None) -> CreatedApiKey:
        body = _body(name=name, scopes=list(scopes), expires_at=expires_at)
        return self._c._run(Call("POST", f"{API}/api-keys", json=body, parse=_model(CreatedApiKey)))

    def get(self, key_id: str) -> ApiKey:
        return self._c._run(Call("GET", f"{API}/api-keys/{_seg(key_id)}", parse=_model(ApiKey), retry=True))

    def revoke(self, key_id: str) -> ApiKey:
        return self._c._run(Call("DELETE", f"{API}/api-keys/{_seg(key_id)}", parse=_model(ApiKey), retry=True))

    def list(self, **filters: Any) -> Any:
        return self._c._run(self._list(filters))

    def iter(self, **filters: Any) -> Any:
        return self._c._paginate(self._list, filters)

    def _list(self, filters: Dict[str, Any]) -> Call:
        return Call("GET", f"{API}/api-keys", params=filters, parse=page_of(ApiKey), retry=True)
