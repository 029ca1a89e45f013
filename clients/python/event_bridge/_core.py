"""What the sync and the async client share: a request is described once (``Call``)
and run by either; retries, problems, signatures and paging are decided here."""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import httpx

from .errors import ProblemError, problem_error
from .verify import Verifier

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Statuses worth another try, when the request is safe to repeat.
RETRY_STATUSES = {429, 502, 503, 504}
USER_AGENT = "event-bridge-python/0.1.0"


@dataclass
class Call:
    """One API request and how to read its answer."""

    method: str
    path: str
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    content: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    parse: Callable[[httpx.Response], Any] = lambda r: r.json()
    # A licence-holder call: authenticated by the licence key, its answer signed.
    holder: bool = False
    nonce: Optional[str] = None
    # Safe to send again after a failure (GET, PUT, DELETE; a POST with an idempotency key).
    retry: bool = False
    # This call's own timeout (an ``httpx.Timeout``), when the client's would cut it short:
    # completing a large multipart upload answers only once the object is assembled.
    timeout: Any = None

    def clean_params(self) -> Optional[Dict[str, Any]]:
        if not self.params:
            return None
        out = {}
        for k, v in self.params.items():
            if v is None:
                continue
            out[k] = ("true" if v else "false") if isinstance(v, bool) else v
        return out


def idempotency_key(given: Optional[str]) -> str:
    """The caller's key, or a fresh one (the same for every retry of this call)."""
    return given or str(uuid.uuid4())


def new_nonce() -> str:
    return uuid.uuid4().hex


def backoff(attempt: int, response: Optional[httpx.Response]) -> float:
    """Seconds before the next try: the server's ``Retry-After`` when it gave one (at
    most 30 s), else exponential from 0.5 s with jitter."""
    if response is not None:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            return min(float(retry_after), 30.0)
    return min(0.5 * (2**attempt), 8.0) * (0.5 + random.random() / 2)


def retry_after_failure(call: Call, error: Exception, attempt: int, max_retries: int) -> None:
    """A connection that failed: raises unless the call may be tried again."""
    if not call.retry or attempt >= max_retries:
        from .errors import TransportError

        raise TransportError(f"{call.method} {call.path}: {error}") from error


def settled(call: Call, response: httpx.Response, attempt: int, max_retries: int, verifier: Optional[Verifier]) -> bool:
    """True when this answer is the call's last (checked, problems raised); False when the
    call may be tried again (429/502/503/504 on a call safe to repeat)."""
    if call.retry and response.status_code in RETRY_STATUSES and attempt < max_retries:
        return False
    check(call, response, response.content, verifier)
    return True


def check(call: Call, response: httpx.Response, body: bytes, verifier: Optional[Verifier]) -> None:
    """Verifies a holder answer's signature (problems included) and raises for a problem."""
    if call.holder and verifier is not None:
        # Problems are signed too, but echo no nonce.
        nonce = call.nonce if response.is_success else None
        verifier.verify_response(body, response.headers.get("eb-signature"), nonce)
    if response.status_code >= 400:
        try:
            problem = json.loads(body) if body else {}
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        problem.setdefault("detail", body[:200].decode("utf-8", "replace") if not problem else "")
        raise problem_error(response.status_code, problem, dict(response.headers))


def settings(url: Optional[str], key: Optional[str]) -> Tuple[str, Optional[str]]:
    url = url or os.environ.get("EB_URL")
    if not url:
        raise ValueError("the gateway's URL: pass url= or set EB_URL")
    return url.rstrip("/"), key if key is not None else os.environ.get("EB_KEY")


def request_headers(call: Call, key: Optional[str]) -> Dict[str, str]:
    """The call's headers, with the API key unless it is a holder call (those carry the
    licence key in the body, and never send an API key along)."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **call.headers}
    if key and not call.holder:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def page_of(model: Any, items_field: str = "items") -> Callable[[httpx.Response], Any]:
    from .models import Page

    def parse(r: httpx.Response) -> Any:
        data = r.json()
        return Page(
            items=[model.from_dict(x) for x in data.get(items_field, [])],
            next_cursor=data.get("next_cursor"),
            common_prefixes=list(data.get("common_prefixes") or []),
        )

    return parse


class SseParser:
    """Server-Sent Events framing (the WHATWG rules the tail needs: ``id``, ``event``,
    ``data`` lines, comments, a blank line ending each event)."""

    def __init__(self) -> None:
        self._data: List[str] = []
        self._id: Optional[str] = None
        self._event: Optional[str] = None
        self.last_id: Optional[str] = None

    def feed(self, line: str) -> Iterator[Tuple[Optional[str], Optional[str], str]]:
        line = line.rstrip("\r\n")
        if line == "":
            if self._data:
                self.last_id = self._id or self.last_id
                yield self._id, self._event, "\n".join(self._data)
            self._data, self._id, self._event = [], None, None
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "event":
            self._event = value


def problem_is(error: BaseException, *codes: str) -> bool:
    """True when ``error`` is a problem with one of these codes."""
    return isinstance(error, ProblemError) and error.code in codes
