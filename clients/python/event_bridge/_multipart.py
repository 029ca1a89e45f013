"""Multipart, resumable uploads: what the sync and the async client share. An upload
is started (or, with ``upload_id``, found again with the parts the storage holds), each
part not yet held is ``PUT`` to its own URL (S3's, or the gateway's signed one: no API
key) and its ``ETag`` checked against the part's MD5, then the upload is completed."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import quote

import httpx

from ._core import Call

# Files above this go up in parts (unless the caller says otherwise).
DEFAULT_THRESHOLD = 16 * 1024 * 1024

API = "/api/v1"


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 - S3's ETag, not security


def bare(etag: Optional[str]) -> str:
    return (etag or "").strip().strip('"')


def upload_path(namespace: str, upload_id: str) -> str:
    return f"{API}/blobs/{quote(namespace, safe='')}/uploads/{quote(upload_id, safe='')}"


@dataclass
class Job:
    """One object to upload in parts."""

    namespace: str
    key: str
    source: Union[str, "os.PathLike[str]", bytes, bytearray]
    size: int
    sha256: str
    content_type: Optional[str]
    part_size: Optional[int]
    upload_id: Optional[str]
    progress: Optional[Callable[[int, Optional[int]], None]]

    def start(self) -> Call:
        """Starts the upload, or finds the earlier one again (``upload_id``)."""
        if self.upload_id:
            return Call("GET", upload_path(self.namespace, self.upload_id), retry=True)
        body: Dict[str, Any] = {"key": self.key, "size": self.size, "sha256": self.sha256}
        if self.content_type:
            body["content_type"] = self.content_type
        if self.part_size:
            body["part_size"] = self.part_size
        return Call("POST", f"{API}/blobs/{quote(self.namespace, safe='')}/uploads", json=body)

    def check_resumed(self, upload: Dict[str, Any]) -> None:
        """An upload found by id must be of this object."""
        if self.upload_id and (upload.get("key") != self.key or upload.get("size") != self.size):
            raise ValueError(
                f"upload {self.upload_id} is of {upload.get('key')!r} ({upload.get('size')} bytes), "
                f"not {self.key!r} ({self.size} bytes)"
            )

    def read(self, offset: int, size: int) -> bytes:
        if isinstance(self.source, (bytes, bytearray)):
            return bytes(self.source[offset : offset + size])
        with open(self.source, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise ValueError(f"{self.source} is shorter than it was when the upload started")
        return data

    def complete(self, upload_id: str, parts: List[Dict[str, Any]], parse: Callable[[Any], Any]) -> Call:
        # The answer comes once the object is assembled (the local store reads it whole):
        # no read timeout.
        return Call(
            "POST",
            upload_path(self.namespace, upload_id) + "/complete",
            json={"parts": parts},
            parse=parse,
            timeout=httpx.Timeout(None, connect=10.0),
        )


def held_etag(upload: Dict[str, Any], part: Dict[str, Any], data: bytes) -> Optional[str]:
    """The ETag of this part when the storage already holds exactly these bytes."""
    for held in upload.get("received") or []:
        if held.get("number") == part["number"]:
            if held.get("size") == part["size"] and bare(held.get("etag")) == bare(md5_etag(data)):
                return str(held["etag"])
            return None
    return None


def checked_etag(number: int, data: bytes, answered: Optional[str]) -> str:
    """The ETag a part's PUT answered, when it is the part's MD5."""
    if bare(answered) != bare(md5_etag(data)):
        from .errors import TransportError

        raise TransportError(f"part {number} arrived damaged: its ETag is {answered}, its MD5 {md5_etag(data)}")
    return str(answered)
