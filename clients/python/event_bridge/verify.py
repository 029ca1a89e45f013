"""Offline verification: signed licence certificates (``ebl1.<kid>.<payload>.<signature>``,
from ``licenses.checkout``) and signed licence-holder answers (the ``EB-Signature``
header). The same rules as the gateway's own Rust verifier (``license_core::cert``)."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import SignatureError
from .models import PublicKey, parse_time

FORMAT = "ebl1"
SIGNATURE_HEADER = "EB-Signature"
# Clock skew tolerated for a certificate's `issued_at`.
SKEW = _dt.timedelta(seconds=300)


class CertificateError(SignatureError):
    """A certificate was refused; ``reason`` is one of ``malformed``, ``unknown_key``,
    ``bad_signature``, ``not_yet_valid``, ``certificate_expired``, ``license_expired``,
    ``product_mismatch``, ``fingerprint_mismatch``, ``entitlements_missing`` or
    ``nonce_mismatch``."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CertificateError("malformed", f"{what} is not base64url") from None


class Verifier:
    """Trusts the published keys (``client.licenses.public_key()``, or a ``{kid: key}``
    mapping of base64url keys pinned in the program)."""

    def __init__(self, keys: Union[PublicKey, Mapping[str, str], Iterable[Any]]):
        self._keys: Dict[str, Optional[Ed25519PublicKey]] = {}
        if isinstance(keys, PublicKey):
            pairs = [(k.kid, k.public_key) for k in keys.keys] or [(keys.kid, keys.public_key)]
        elif isinstance(keys, Mapping):
            pairs = list(keys.items())
        else:
            pairs = [(k["kid"], k["public_key"]) if isinstance(k, Mapping) else (k.kid, k.public_key) for k in keys]
        for kid, key in pairs:
            raw = _b64(key.strip(), "public key")
            try:
                self._keys[kid] = Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None
            except ValueError:
                self._keys[kid] = None

    def _check(self, kid: str, signed: bytes, signature: str) -> None:
        if kid not in self._keys:
            raise CertificateError("unknown_key", f"unknown signing key `{kid}`")
        key = self._keys[kid]
        sig = _b64(signature, "signature")
        if key is None or len(sig) != 64:
            raise CertificateError("bad_signature", "bad signature")
        try:
            key.verify(sig, signed)
        except InvalidSignature:
            raise CertificateError("bad_signature", "bad signature") from None

    def verify_signature(self, certificate: str) -> Dict[str, Any]:
        """Checks the signature and returns the payload; does not look at times."""
        certificate = certificate.strip()
        signed, dot, signature = certificate.rpartition(".")
        if not dot:
            raise CertificateError("malformed", "no signature")
        parts = signed.split(".")
        if len(parts) != 3:
            raise CertificateError("malformed", "expected ebl1.<kid>.<payload>.<signature>")
        fmt, kid, payload = parts
        if fmt != FORMAT:
            raise CertificateError("malformed", "unknown certificate format")
        self._check(kid, signed.encode("ascii", "replace"), signature)
        try:
            data = json.loads(_b64(payload, "payload"))
        except ValueError:
            raise CertificateError("malformed", "payload is not the expected JSON") from None
        if not isinstance(data, dict):
            raise CertificateError("malformed", "payload is not the expected JSON")
        return data

    def verify(
        self,
        certificate: str,
        *,
        product: Optional[str] = None,
        fingerprint: Optional[str] = None,
        entitlements: Sequence[str] = (),
        now: Optional[_dt.datetime] = None,
    ) -> Dict[str, Any]:
        """The full offline check: signature, validity window, licence expiry (with its
        grace period, or ``maintained``), product, machine and entitlements, in that order.
        Returns the payload; raises :class:`CertificateError`."""
        payload = self.verify_signature(certificate)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        try:
            issued = parse_time(payload["issued_at"])
            expires = parse_time(payload["expires_at"])
            licence_expires = parse_time(payload.get("license_expires_at"))
            grace_ends = parse_time(payload.get("grace_ends_at"))
        except (KeyError, TypeError, ValueError):
            raise CertificateError("malformed", "payload is not the expected JSON") from None
        assert issued is not None and expires is not None
        if issued > now + SKEW:
            raise CertificateError("not_yet_valid", "the certificate is not valid yet")
        if expires <= now:
            raise CertificateError("certificate_expired", "the certificate has expired")
        if (
            licence_expires is not None
            and licence_expires <= now
            and not payload.get("maintained", False)
            and (grace_ends is None or now >= grace_ends)
        ):
            raise CertificateError("license_expired", "the licence has expired")
        if product is not None and payload.get("product") != product:
            raise CertificateError("product_mismatch", f"the certificate is for product `{payload.get('product')}`")
        if fingerprint is not None and payload.get("fingerprint") != fingerprint:
            raise CertificateError("fingerprint_mismatch", "the certificate is bound to another machine")
        missing = [e for e in entitlements if e not in (payload.get("entitlements") or [])]
        if missing:
            raise CertificateError("entitlements_missing", f"missing entitlements: {missing}")
        return payload

    def verify_response(self, body: bytes, signature_header: Optional[str], nonce: Optional[str] = None) -> Any:
        """Checks a licence-holder answer: ``EB-Signature`` must be a trusted key's
        signature over exactly ``body``, and the body must echo the request's ``nonce``
        (so a replayed answer to another request fails). Returns the body's JSON."""
        fields = {}
        for part in (signature_header or "").split(";"):
            name, eq, value = part.strip().partition("=")
            if eq:
                fields[name] = value.strip()
        if "kid" not in fields or "sig" not in fields:
            raise CertificateError("malformed", "expected kid=<kid>; sig=<signature>")
        self._check(fields["kid"], body, fields["sig"])
        try:
            data = json.loads(body) if body else None
        except ValueError:
            raise CertificateError("malformed", "the body is not JSON") from None
        if nonce is not None and (not isinstance(data, dict) or data.get("nonce") != nonce):
            raise CertificateError("nonce_mismatch", "the answer does not echo this request's nonce")
        return data
