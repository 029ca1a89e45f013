"""Event Bridge for Python: licences, email, Slack, storage, shared data and events.

    from event_bridge import Client
    with Client("https://bridge.example.com", key="eb_...") as eb:
        eb.emails.send("someone@example.com", subject="Hi", text="Hello")
"""

from .client import AsyncClient, Client
from .errors import (
    BadRequest,
    Conflict,
    EventBridgeError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProblemError,
    RateLimited,
    SignatureError,
    TransportError,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
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
    Page,
    Policy,
    Presigned,
    PublicKey,
    SlackMessage,
    Validation,
)
from .resources import attachment
from .verify import CertificateError, Verifier

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
