"""Errors: every refusal of the API is an RFC 9457 problem document, raised as a
:class:`ProblemError` (or the subclass for its status) that carries its fields."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class EventBridgeError(Exception):
    """Anything this client raises."""


class TransportError(EventBridgeError):
    """The gateway could not be reached, or the connection broke (after the retries)."""


class SignatureError(EventBridgeError):
    """A signed licence answer or an offline certificate did not verify."""


class ProblemError(EventBridgeError):
    """The gateway answered with a problem document.

    ``code`` is the stable machine-readable reason (``not_found``, ``too_many_machines``,
    ``idempotency_conflict``...); ``detail`` says it in words; ``field`` names the
    refused field of a 422 (``errors`` holds a batch's per-item problems, if any);
    ``request_id`` is the one the gateway logged.
    """

    def __init__(self, status: int, problem: Dict[str, Any], headers: Optional[Dict[str, str]] = None):
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code") or problem.get("title") or status)
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or "")
        self.field: Optional[str] = problem.get("field")
        self.errors: List[Dict[str, Any]] = list(problem.get("errors") or [])
        self.request_id: Optional[str] = problem.get("request_id") or (headers or {}).get("x-request-id")
        retry = (headers or {}).get("retry-after")
        self.retry_after: Optional[float] = float(retry) if retry and retry.isdigit() else None
        super().__init__(f"{status} {self.code}: {self.detail or self.title}")


class BadRequest(ProblemError):
    """400: a malformed query, path, header or body."""


class Unauthorized(ProblemError):
    """401: no API key, or one that is unknown, revoked or expired."""


class Forbidden(ProblemError):
    """403: the key lacks the scope the route needs."""


class NotFound(ProblemError):
    """404."""


class Conflict(ProblemError):
    """409: an idempotency conflict, a policy in use, a name taken..."""


class PreconditionFailed(ProblemError):
    """412: ``If-Match`` / ``If-None-Match`` did not hold (someone else changed it)."""


class PayloadTooLarge(ProblemError):
    """413: over the body limit or the namespace's ``max_size``."""


class Unprocessable(ProblemError):
    """422: the body is well-formed but a field is refused (see ``errors``)."""


class RateLimited(ProblemError):
    """429: wait ``retry_after`` seconds."""


class Unavailable(ProblemError):
    """503: the database or a transport is unavailable, or the channel is not configured."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


def problem_error(status: int, problem: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> ProblemError:
    """The exception for a problem answer with this status."""
    return _BY_STATUS.get(status, ProblemError)(status, problem, headers)
