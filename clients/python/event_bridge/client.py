"""The sync :class:`Client` and the async :class:`AsyncClient`: the same sections and
methods, one over ``httpx.Client``, the other over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterator, Optional

import httpx

from ._core import (
    DEFAULT_TIMEOUT,
    Call,
    SseParser,
    backoff,
    check,
    request_headers,
    retry_after_failure,
    settings,
    settled,
)
from . import _multipart
from .errors import TransportError
from .models import Event
from .resources import ApiKeys, Blobs, Data, Emails, Events, Licenses, Policies, Progress, Slack
from .verify import Verifier


class _Sections:
    def _sections(self) -> None:
        self.licenses = Licenses(self)
        self.policies = Policies(self)
        self.emails = Emails(self)
        self.slack = Slack(self)
        self.blobs = Blobs(self)
        self.data = Data(self)
        self.events = Events(self)
        self.api_keys = ApiKeys(self)


def _chunks(source: Any, size: int, progress: Optional[Progress], total: Optional[int]) -> Iterator[bytes]:
    done = 0
    if isinstance(source, (bytes, bytearray)):
        view = memoryview(source)
        for start in range(0, len(view), size):
            piece = bytes(view[start : start + size])
            done += len(piece)
            if progress:
                progress(done, total)
            yield piece
        return
    opened = isinstance(source, (str, os.PathLike))
    f = open(source, "rb") if opened else source
    try:
        for piece in iter(lambda: f.read(size), b""):
            done += len(piece)
            if progress:
                progress(done, total)
            yield piece
    finally:
        if opened:
            f.close()


class _Sink:
    """Where a download goes: memory, a file object, or a path (through ``PATH.part``,
    renamed into place once complete and checked). A path's partial file is kept when the
    connection drops, with the object's ETag beside it (``PATH.part.etag``), so the next
    download of the same object to the same path asks only for the rest."""

    def __init__(self, dest: Any):
        self.dest = dest
        self.tmp: Optional[str] = None
        self.sha256 = hashlib.sha256()
        self.have = 0
        self.etag: Optional[str] = None
        if dest is None:
            self.f: Any = bytearray()
        elif isinstance(dest, (str, os.PathLike)):
            self.tmp = os.fspath(dest) + ".part"
            self.f = None
            try:
                with open(self.tmp + ".etag", encoding="utf-8") as f:
                    self.etag = f.read().strip() or None
                self.have = os.path.getsize(self.tmp) if self.etag else 0
            except OSError:
                self.etag, self.have = None, 0
        else:
            self.f = dest

    def resume_headers(self) -> Dict[str, str]:
        """``Range`` and ``If-Range`` asking for what the partial file lacks, if any."""
        if self.have > 0 and self.etag:
            return {"Range": f"bytes={self.have}-", "If-Range": self.etag}
        return {}

    def start(self, response: httpx.Response) -> int:
        """Opens the file for ``response``: appends to the partial one when the answer is
        its rest (206), else starts again. Returns the bytes already held."""
        if self.tmp is None:
            return 0
        if response.status_code == 206 and self.have > 0:
            with open(self.tmp, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    self.sha256.update(block)
            self.f = open(self.tmp, "ab")
        else:
            self.have = 0
            self.f = open(self.tmp, "wb")
        etag = response.headers.get("etag")
        if etag:
            with open(self.tmp + ".etag", "w", encoding="utf-8") as f:
                f.write(etag)
        return self.have

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        if isinstance(self.f, bytearray):
            self.f.extend(data)
        else:
            self.f.write(data)

    def finish(self, response: httpx.Response) -> Any:
        expected = response.headers.get("x-checksum-sha256")
        whole = response.status_code == 200 or (response.status_code == 206 and self.have > 0)
        if expected and whole and expected != self.sha256.hexdigest():
            self.abandon(keep=False)
            raise TransportError(f"the download's SHA-256 {self.sha256.hexdigest()} is not the object's {expected}")
        if self.dest is None:
            return bytes(self.f)
        if self.tmp is not None:
            self.f.close()
            os.replace(self.tmp, self.dest)
            _forget(self.tmp + ".etag")
            self.tmp = None
        return dict(response.headers)

    def abandon(self, keep: bool) -> None:
        """Closes the partial file; keeps it (to resume) or removes it."""
        if self.tmp is not None:
            if self.f is not None:
                self.f.close()
            if not keep:
                _forget(self.tmp)
                _forget(self.tmp + ".etag")
            self.tmp = None


def _forget(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _resuming(call: Call, sink: _Sink) -> Call:
    """``call`` asking only for what ``sink``'s partial file lacks."""
    extra = sink.resume_headers()
    if not extra:
        return call
    return dataclasses.replace(call, headers={**call.headers, **extra})


def _total(response: httpx.Response, held: int) -> Optional[int]:
    size = _size(response)
    return None if size is None else size + held


def _size(response: httpx.Response) -> Optional[int]:
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


class Client(_Sections):
    """A client of one gateway.

    ``url`` and ``key`` default to ``EB_URL`` and ``EB_KEY``. A desktop program that only
    makes licence-holder calls needs no API key; give it a ``verifier`` (see
    :class:`event_bridge.Verifier`) and every holder answer is checked against its
    signature and a fresh nonce. Requests that are safe to repeat (reads, PUT, DELETE,
    sends with an idempotency key) are retried ``max_retries`` times on connection
    failures and on 429/502/503/504, after ``Retry-After`` when the gateway gives one.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        *,
        verifier: Optional[Verifier] = None,
        timeout: Any = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        http: Optional[httpx.Client] = None,
    ):
        self.url, self._key = settings(url, key)
        self.verifier = verifier
        self.max_retries = max_retries
        # httpx retries a failed connect itself; the loop below covers the rest.
        self._http = http or httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(retries=max_retries))
        self._sections()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, call: Call, content: Any = None, stream: bool = False) -> httpx.Response:
        request = self._http.build_request(
            call.method,
            self.url + call.path,
            params=call.clean_params(),
            json=call.json,
            content=content if content is not None else call.content,
            headers=request_headers(call, self._key),
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        return self._http.send(request, stream=stream)

    def _run(self, call: Call) -> Any:
        attempt = 0
        while True:
            response = None
            try:
                response = self._send(call)
            except httpx.TransportError as e:
                retry_after_failure(call, e, attempt, self.max_retries)
            if response is not None and settled(call, response, attempt, self.max_retries, self.verifier):
                return call.parse(response)
            time.sleep(backoff(attempt, response))
            attempt += 1

    def _paginate(self, make: Callable[[Dict[str, Any]], Call], filters: Dict[str, Any]) -> Iterator[Any]:
        filters = dict(filters)
        while True:
            page = self._run(make(filters))
            yield from page.items
            if not page.next_cursor:
                return
            filters["cursor"] = page.next_cursor

    def _multipart(self, job: "_multipart.Job", parse: Callable[[httpx.Response], Any]) -> Any:
        """Runs a multipart upload (see ``_multipart``); any failure carries the upload's
        id as ``upload_id``, to resume with ``upload(..., upload_id=...)``."""
        upload = self._run(job.start())
        job.check_resumed(upload)
        try:
            done, parts = 0, []
            for part in upload["parts"]:
                data = job.read(part["offset"], part["size"])
                etag = _multipart.held_etag(upload, part, data)
                if etag is None:
                    etag = self._put_part(part, data)
                parts.append({"number": part["number"], "etag": etag})
                done += part["size"]
                if job.progress:
                    job.progress(done, job.size)
            return self._run(job.complete(upload["id"], parts, parse))
        except BaseException as e:
            e.upload_id = upload["id"]  # type: ignore[attr-defined]
            raise

    def _put_part(self, part: Dict[str, Any], data: bytes) -> str:
        """PUTs one part to its URL (no API key), tried again on a broken connection."""
        call = Call("PUT", part["url"], retry=True)
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.put(part["url"], content=data, headers=dict(part.get("headers") or {}))
            except httpx.TransportError as e:
                retry_after_failure(call, e, attempt, self.max_retries)
                time.sleep(backoff(attempt, None))
                continue
            check(call, response, response.content, None)
            return _multipart.checked_etag(part["number"], data, response.headers.get("etag"))
        raise TransportError(f"part {part['number']}: no answer")

    def _upload(self, call: Call, source: Any, size: Optional[int], progress: Optional[Progress]) -> Any:
        # A stream cannot be replayed: an upload is tried once (resume with the multipart API).
        try:
            response = self._send(call, content=_chunks(source, Blobs.CHUNK, progress, size))
        except httpx.TransportError as e:
            raise TransportError(f"PUT {call.path}: {e}") from e
        check(call, response, response.content, None)
        return call.parse(response)

    def _download(self, call: Call, dest: Any, progress: Optional[Progress]) -> Any:
        sink = _Sink(dest)
        try:
            response = self._send(_resuming(call, sink), stream=True)
        except httpx.TransportError as e:
            raise TransportError(f"GET {call.path}: {e}") from e
        try:
            if response.status_code == 416 and sink.have:
                # The partial file is not a start of this object: fetch it whole.
                sink.abandon(keep=False)
                return self._download(call, dest, progress)
            if response.status_code >= 400:
                check(call, response, response.read(), None)
            done = sink.start(response)
            total = _total(response, done)
            try:
                for data in response.iter_bytes(Blobs.CHUNK):
                    sink.write(data)
                    done += len(data)
                    if progress:
                        progress(done, total)
            except BaseException as e:
                sink.abandon(keep=isinstance(e, httpx.TransportError))
                if isinstance(e, httpx.TransportError):
                    raise TransportError(f"GET {call.path}: {e}; download again to the same path to resume") from e
                raise
            return sink.finish(response)
        finally:
            response.close()

    def _events(self, path: str, params: Dict[str, Any], last_event_id: Optional[str]) -> Iterator[Event]:
        attempt = 0
        while True:
            call = Call("GET", path, params=params, headers={"Accept": "text/event-stream"})
            if last_event_id:
                call.headers["Last-Event-ID"] = last_event_id
            parser = SseParser()
            try:
                with self._http.stream(
                    "GET",
                    self.url + path,
                    params=call.clean_params(),
                    headers=request_headers(call, self._key),
                    timeout=httpx.Timeout(None, connect=10.0),
                ) as response:
                    if response.status_code >= 400:
                        check(call, response, response.read(), None)
                    attempt = 0
                    for line in response.iter_lines():
                        for _, _, data in parser.feed(line):
                            yield Event.from_dict(json.loads(data))
                        last_event_id = parser.last_id or last_event_id
            except httpx.TransportError as e:
                if attempt >= self.max_retries:
                    raise TransportError(f"GET {path}: {e}") from e
            time.sleep(backoff(attempt, None))
            attempt += 1


class AsyncClient(_Sections):
    """The same as :class:`Client`, for asyncio: every method returns an awaitable;
    ``iter`` and ``events.stream`` return async iterators."""

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        *,
        verifier: Optional[Verifier] = None,
        timeout: Any = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        http: Optional[httpx.AsyncClient] = None,
    ):
        self.url, self._key = settings(url, key)
        self.verifier = verifier
        self.max_retries = max_retries
        self._http = http or httpx.AsyncClient(
            timeout=timeout, transport=httpx.AsyncHTTPTransport(retries=max_retries)
        )
        self._sections()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, call: Call, content: Any = None, stream: bool = False) -> httpx.Response:
        request = self._http.build_request(
            call.method,
            self.url + call.path,
            params=call.clean_params(),
            json=call.json,
            content=content if content is not None else call.content,
            headers=request_headers(call, self._key),
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        return await self._http.send(request, stream=stream)

    async def _run(self, call: Call) -> Any:
        attempt = 0
        while True:
            response = None
            try:
                response = await self._send(call)
            except httpx.TransportError as e:
                retry_after_failure(call, e, attempt, self.max_retries)
            if response is not None and settled(call, response, attempt, self.max_retries, self.verifier):
                return call.parse(response)
            await asyncio.sleep(backoff(attempt, response))
            attempt += 1

    async def _paginate(self, make: Callable[[Dict[str, Any]], Call], filters: Dict[str, Any]) -> AsyncIterator[Any]:
        filters = dict(filters)
        while True:
            page = await self._run(make(filters))
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            filters["cursor"] = page.next_cursor

    async def _multipart(self, job: "_multipart.Job", parse: Callable[[httpx.Response], Any]) -> Any:
        """Runs a multipart upload (see ``_multipart``); any failure carries the upload's
        id as ``upload_id``, to resume with ``upload(..., upload_id=...)``."""
        upload = await self._run(job.start())
        job.check_resumed(upload)
        try:
            done, parts = 0, []
            for part in upload["parts"]:
                data = job.read(part["offset"], part["size"])
                etag = _multipart.held_etag(upload, part, data)
                if etag is None:
                    etag = await self._put_part(part, data)
                parts.append({"number": part["number"], "etag": etag})
                done += part["size"]
                if job.progress:
                    job.progress(done, job.size)
            return await self._run(job.complete(upload["id"], parts, parse))
        except BaseException as e:
            e.upload_id = upload["id"]  # type: ignore[attr-defined]
            raise

    async def _put_part(self, part: Dict[str, Any], data: bytes) -> str:
        """PUTs one part to its URL (no API key), tried again on a broken connection."""
        call = Call("PUT", part["url"], retry=True)
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.put(part["url"], content=data, headers=dict(part.get("headers") or {}))
            except httpx.TransportError as e:
                retry_after_failure(call, e, attempt, self.max_retries)
                await asyncio.sleep(backoff(attempt, None))
                continue
            check(call, response, response.content, None)
            return _multipart.checked_etag(part["number"], data, response.headers.get("etag"))
        raise TransportError(f"part {part['number']}: no answer")

    async def _upload(self, call: Call, source: Any, size: Optional[int], progress: Optional[Progress]) -> Any:
        async def body() -> AsyncIterator[bytes]:
            for piece in _chunks(source, Blobs.CHUNK, progress, size):
                yield piece

        try:
            response = await self._send(call, content=body())
        except httpx.TransportError as e:
            raise TransportError(f"PUT {call.path}: {e}") from e
        check(call, response, response.content, None)
        return call.parse(response)

    async def _download(self, call: Call, dest: Any, progress: Optional[Progress]) -> Any:
        sink = _Sink(dest)
        try:
            response = await self._send(_resuming(call, sink), stream=True)
        except httpx.TransportError as e:
            raise TransportError(f"GET {call.path}: {e}") from e
        try:
            if response.status_code == 416 and sink.have:
                # The partial file is not a start of this object: fetch it whole.
                sink.abandon(keep=False)
                return await self._download(call, dest, progress)
            if response.status_code >= 400:
                check(call, response, await response.aread(), None)
            done = sink.start(response)
            total = _total(response, done)
            try:
                async for data in response.aiter_bytes(Blobs.CHUNK):
                    sink.write(data)
                    done += len(data)
                    if progress:
                        progress(done, total)
            except BaseException as e:
                sink.abandon(keep=isinstance(e, httpx.TransportError))
                if isinstance(e, httpx.TransportError):
                    raise TransportError(f"GET {call.path}: {e}; download again to the same path to resume") from e
                raise
            return sink.finish(response)
        finally:
            await response.aclose()

    async def _events(self, path: str, params: Dict[str, Any], last_event_id: Optional[str]) -> AsyncIterator[Event]:
        attempt = 0
        while True:
            call = Call("GET", path, params=params, headers={"Accept": "text/event-stream"})
            if last_event_id:
                call.headers["Last-Event-ID"] = last_event_id
            parser = SseParser()
            try:
                async with self._http.stream(
                    "GET",
                    self.url + path,
                    params=call.clean_params(),
                    headers=request_headers(call, self._key),
                    timeout=httpx.Timeout(None, connect=10.0),
                ) as response:
                    if response.status_code >= 400:
                        check(call, response, await response.aread(), None)
                    attempt = 0
                    async for line in response.aiter_lines():
                        for _, _, data in parser.feed(line):
                            yield Event.from_dict(json.loads(data))
                        last_event_id = parser.last_id or last_event_id
            except httpx.TransportError as e:
                if attempt >= self.max_retries:
                    raise TransportError(f"GET {path}: {e}") from e
            await asyncio.sleep(backoff(attempt, None))
            attempt += 1
