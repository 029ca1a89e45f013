"""The Python client against a live gateway: each team's flows, and the refusals."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import threading
import uuid

import httpx
import pytest

from event_bridge import (
    AsyncClient,
    CertificateError,
    Client,
    Forbidden,
    NotFound,
    PreconditionFailed,
    SignatureError,
    TransportError,
    Unauthorized,
    Unprocessable,
    Verifier,
    attachment,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- desktop: validate, activate, heartbeat, checkout, offline verification ---------------


def test_desktop_flow_with_signed_answers_and_offline_certificate(client, gateway):
    issued = client.licenses.issue("client", "Desk", unique("d") + "@example.com", max_machines=1, entitlements=["export"])
    assert issued.key and issued.status == "active" and issued.max_machines == 1
    desktop = Client(gateway[0], key=None, verifier=Verifier(client.licenses.public_key()))

    v = desktop.licenses.validate(issued.key, product="client")
    assert v.valid and v.code == "valid" and v.license.id == issued.id
    assert v.nonce, "a verifying client sends a nonce and gets it back"

    machine = desktop.licenses.activate(issued.key, "fp-1", name="Laptop", platform="linux")
    assert machine.fingerprint == "fp-1" and machine.license_id == issued.id
    with pytest.raises(Unprocessable) as refused:
        desktop.licenses.activate(issued.key, "fp-2")
    assert refused.value.code == "too_many_machines" and refused.value.status == 422

    beat = desktop.licenses.heartbeat(issued.key, "fp-1")
    assert beat.last_heartbeat_at is not None
    assert desktop.licenses.validate(issued.key, fingerprint="fp-1").code == "valid"
    assert desktop.licenses.validate(issued.key, fingerprint="fp-9").code == "fingerprint_scope_mismatch"

    cert = desktop.licenses.checkout(issued.key, fingerprint="fp-1", ttl="1d")
    verifier = Verifier(client.licenses.public_key())
    payload = verifier.verify(cert.certificate, product="client", fingerprint="fp-1", entitlements=["export"])
    assert payload["license_id"] == issued.id
    for expect, reason in [
        ({"product": "platform"}, "product_mismatch"),
        ({"fingerprint": "fp-2"}, "fingerprint_mismatch"),
        ({"entitlements": ["sso"]}, "entitlements_missing"),
        ({"now": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)}, "certificate_expired"),
    ]:
        with pytest.raises(CertificateError) as e:
            verifier.verify(cert.certificate, **expect)
        assert e.value.reason == reason, expect
    head, _, sig = cert.certificate.rpartition(".")
    fmt, kid, body = head.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["entitlements"] = ["export", "sso"]
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    with pytest.raises(CertificateError) as e:
        verifier.verify(f"{fmt}.{kid}.{forged_body}.{sig}")
    assert e.value.reason == "bad_signature"

    assert desktop.licenses.deactivate(issued.key, "fp-1").deactivated
    client.licenses.suspend(issued.id)
    suspended = desktop.licenses.validate(issued.key)
    assert not suspended.valid and suspended.code == "suspended"
    assert client.licenses.reinstate(issued.id).status == "active"
    desktop.close()


def test_a_verifier_that_does_not_trust_the_gateway_refuses_its_answers(client, gateway):
    issued = client.licenses.issue("platform", "Trust", unique("t") + "@example.com")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    impostor = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = client.licenses.public_key().kid
    wrong = Verifier({kid: base64.urlsafe_b64encode(impostor).decode().rstrip("=")})
    with Client(gateway[0], verifier=wrong) as desktop, pytest.raises(SignatureError):
        desktop.licenses.validate(issued.key)
    # A problem answer is signed too, and refused as well.
    with Client(gateway[0], verifier=wrong) as desktop, pytest.raises(SignatureError):
        desktop.licenses.activate("AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", "fp")


def test_verify_response_refuses_an_edited_body_and_a_replayed_nonce(client):
    issued = client.licenses.issue("client", "Replay", unique("r") + "@example.com")
    verifier = Verifier(client.licenses.public_key())
    res = httpx.post(client.url + "/api/v1/licenses/validate", json={"key": issued.key, "nonce": "n-1"})
    signature = res.headers["eb-signature"]
    assert verifier.verify_response(res.content, signature, "n-1")["valid"] is True
    with pytest.raises(CertificateError) as e:
        verifier.verify_response(res.content, signature, "n-2")
    assert e.value.reason == "nonce_mismatch"
    with pytest.raises(CertificateError) as e:
        verifier.verify_response(res.content.replace(b'"valid":true', b'"valid":false'), signature, "n-1")
    assert e.value.reason == "bad_signature"


def test_problems_carry_their_code_and_fields(client, gateway):
    with pytest.raises(NotFound) as e:
        client.licenses.get("lic_does_not_exist")
    assert e.value.status == 404 and e.value.code
    with pytest.raises(Unprocessable) as e:
        client.licenses.issue("client", "Name", "not-an-address")
    assert e.value.code == "invalid_field" and e.value.field == "owner_email" and e.value.request_id
    with Client(gateway[0], "eb_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.licenses.list()
    narrow = client.api_keys.create(unique("narrow"), ["emails:read"])
    with Client(gateway[0], narrow.key) as c, pytest.raises(Forbidden) as e:
        c.licenses.list()
    assert e.value.status == 403
    assert client.api_keys.revoke(narrow.id).status == "revoked"


def test_pagination_iterates_every_page(client):
    owner = unique("pages") + "@example.com"
    ids = {client.licenses.issue("client", f"P{i}", owner).id for i in range(5)}
    page = client.licenses.list(owner_email=owner, limit=2)
    assert len(page.items) == 2 and page.next_cursor
    assert {lic.id for lic in client.licenses.iter(owner_email=owner, limit=2)} == ids


# --- web: documents with versions, an upload by signed URL, an email -----------------------


def test_documents_with_versions(client):
    coll, doc = "settings", unique("doc")
    created = client.data.put(coll, doc, {"theme": "dark", "lang": "ko"}, if_none_match="*")
    assert created.version >= 1 and created.data["lang"] == "ko"
    patched = client.data.patch(coll, doc, {"theme": None, "size": 12}, if_match=created.version)
    assert patched.data == {"lang": "ko", "size": 12} and patched.version > created.version
    with pytest.raises(PreconditionFailed) as e:
        client.data.put(coll, doc, {"lost": "update"}, if_match=created.version)
    assert e.value.status == 412
    assert client.data.get(coll, doc).data == patched.data
    client.data.delete(coll, doc, if_match=patched.version)
    with pytest.raises(NotFound):
        client.data.get(coll, doc)


def test_an_email_is_sent_once_per_idempotency_key(client):
    key = unique("idem")
    to = unique("to") + "@example.com"
    first = client.emails.send(to, subject="안녕하세요", text="본문", idempotency_key=key,
                               attachments=[attachment("a.txt", b"hello", "text/plain")])
    again = client.emails.send(to, subject="안녕하세요", text="본문", idempotency_key=key,
                               attachments=[attachment("a.txt", b"hello", "text/plain")])
    assert again.id == first.id and again.replayed and not first.replayed
    email = client.emails.get(first.id)
    assert email.subject == "안녕하세요" and email.to == [to]
    assert b"Subject:" in client.emails.raw(first.id) or email.status == "queued"
    with pytest.raises(Unprocessable):
        client.emails.send("not an address", subject="x", text="y")


def test_slack_message_and_preview(client):
    accepted = client.slack.post("warning", "Disk almost full", text="93% on db-1", channel="#ops",
                                 fields=[{"title": "host", "value": "db-1"}])
    assert client.slack.get(accepted.id).title == "Disk almost full"
    preview = client.slack.preview("error", "Boom")
    assert "blocks" in json.dumps(preview)


def test_presigned_upload_then_download_without_a_key(client):
    key = unique("web") + "/hello.txt"
    put = client.blobs.presign("web", key, method="PUT", content_length=5, content_type="text/plain")
    res = httpx.put(put.url, content=b"hello", headers={**put.headers, "Content-Type": "text/plain"})
    assert res.status_code in (200, 201), res.text
    get = client.blobs.presign("web", key)
    assert httpx.get(get.url).content == b"hello"


# --- AI: large files up and down, streamed, with progress ---------------------------------


def test_a_large_file_streams_up_and_down_with_progress(client, tmp_path):
    source = tmp_path / "model.bin"
    data = os.urandom(5 * 1024 * 1024 + 123)
    source.write_bytes(data)
    seen = []
    key = unique("models") + "/model.bin"
    blob = client.blobs.upload("ai", key, source, progress=lambda done, total: seen.append((done, total)))
    assert blob.size == len(data) and blob.sha256 == hashlib.sha256(data).hexdigest()
    assert seen[-1] == (len(data), len(data)) and len(seen) > 1
    dest = tmp_path / "copy.bin"
    got = []
    headers = client.blobs.download("ai", key, dest, progress=lambda done, total: got.append(done))
    assert dest.read_bytes() == data and got[-1] == len(data)
    assert headers["etag"] == blob.etag
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".eb-download-")]
    listing = client.blobs.list("ai", prefix=key.split("/")[0] + "/", delimiter="/")
    assert [b.key for b in listing.items] == [key]
    with pytest.raises(PreconditionFailed):
        client.blobs.upload("ai", key, b"other", if_none_match="*")
    client.blobs.delete("ai", key)
    with pytest.raises(NotFound):
        client.blobs.download("ai", key, tmp_path / "gone.bin")
    assert not (tmp_path / "gone.bin").exists()


def test_a_large_upload_goes_in_parts_and_resumes_after_a_failure(client, tmp_path):
    mib = 1024 * 1024
    source = tmp_path / "weights.bin"
    data = os.urandom(11 * mib + 77)
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    key = unique("models") + "/weights.bin"
    seen = []
    blob = client.blobs.upload(
        "ai", key, source, part_size=5 * mib, multipart_threshold=8 * mib,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert blob.size == len(data) and blob.sha256 == sha
    assert seen == [(5 * mib, len(data)), (10 * mib, len(data)), (len(data), len(data))]
    assert client.blobs.head("ai", key)["x-checksum-sha256"] == sha
    dest = tmp_path / "copy.bin"
    client.blobs.download("ai", key, dest)
    assert dest.read_bytes() == data

    # A part that fails (here: the second PUT breaks) leaves the upload to resume.
    key2 = unique("models") + "/resumed.bin"
    calls = {"n": 0}
    real_put = client._put_part

    def flaky(part, body):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("the network dropped")
        return real_put(part, body)

    client._put_part = flaky
    try:
        with pytest.raises(ConnectionError) as failed:
            client.blobs.upload("ai", key2, source, part_size=5 * mib, multipart_threshold=8 * mib)
    finally:
        client._put_part = real_put
    upload_id = failed.value.upload_id
    held = client.blobs.get_upload("ai", upload_id)
    assert [p["number"] for p in held["received"]] == [1]
    sent = []
    client._put_part = lambda part, body: sent.append(part["number"]) or real_put(part, body)
    try:
        blob = client.blobs.upload("ai", key2, source, upload_id=upload_id)
    finally:
        client._put_part = real_put
    assert sent == [2, 3], "only the parts the storage lacked"
    assert blob.sha256 == sha and blob.key == key2
    with pytest.raises(NotFound):
        client.blobs.get_upload("ai", upload_id)
    # Another object's upload id is refused before anything is sent.
    from event_bridge._core import Call

    other = client._run(Call("POST", "/api/v1/blobs/ai/uploads", json={"key": unique("x") + ".bin", "size": len(data)}))
    with pytest.raises(ValueError):
        client.blobs.upload("ai", key2, source, upload_id=other["id"])
    client.blobs.abort_upload("ai", other["id"])
    with pytest.raises(NotFound):
        client.blobs.abort_upload("ai", other["id"])


def test_a_dropped_download_resumes_from_its_partial_file(client, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    key = unique("models") + "/resume.bin"
    blob = client.blobs.upload("ai", key, data)
    dest = tmp_path / "resume.bin"
    part, tag = tmp_path / "resume.bin.part", tmp_path / "resume.bin.part.etag"

    # What a dropped connection leaves: the first bytes and the object's ETag.
    held = 1024 * 1024
    part.write_bytes(data[:held])
    tag.write_text(blob.etag)
    seen = []
    headers = client.blobs.download("ai", key, dest, progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == data
    assert headers["content-range"] == f"bytes {held}-{len(data) - 1}/{len(data)}"
    assert seen[0][0] > held and seen[-1] == (len(data), len(data))
    assert not part.exists() and not tag.exists()

    # A partial file of another version (its ETag no longer current): fetched whole.
    part.write_bytes(b"stale" * 100)
    tag.write_text('"an-older-version"')
    client.blobs.download("ai", key, dest)
    assert dest.read_bytes() == data and not part.exists()

    # Partial bytes that are not the object's start, under the right ETag: the whole
    # file's SHA-256 refuses them, the partial file goes, and the next try is whole.
    part.write_bytes(b"x" * held)
    tag.write_text(blob.etag)
    dest.unlink()
    with pytest.raises(TransportError):
        client.blobs.download("ai", key, dest)
    assert not dest.exists() and not part.exists()
    client.blobs.download("ai", key, dest)
    assert dest.read_bytes() == data

    # A partial file longer than the object: its range cannot be served (416); whole.
    part.write_bytes(data + b"more")
    tag.write_text(blob.etag)
    client.blobs.download("ai", key, dest)
    assert dest.read_bytes() == data


def test_the_async_client_uploads_in_parts_too(gateway):
    mib = 1024 * 1024
    data = os.urandom(10 * mib + 1)

    async def main():
        async with AsyncClient(*gateway) as eb:
            seen = []
            key = unique("models") + "/async.bin"
            blob = await eb.blobs.upload(
                "ai", key, data, part_size=5 * mib, multipart_threshold=mib,
                progress=lambda done, total: seen.append(done),
            )
            assert blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
            assert seen[-1] == len(data) and len(seen) == 3
            got = await eb.blobs.download("ai", key)
            assert got == data

    asyncio.run(main())


def test_a_corrupted_upload_is_refused_by_its_checksum(client):
    from event_bridge._core import Call

    call = Call("PUT", "/api/v1/blobs/web/" + unique("c") + ".bin",
                headers={"x-checksum-sha256": hashlib.sha256(b"right").hexdigest()})
    with pytest.raises(Exception) as e:
        client._upload(call, b"wrong", 5, None)
    assert getattr(e.value, "status", None) in (400, 422), e.value


# --- events -------------------------------------------------------------------------------


def test_the_live_tail_sees_a_new_event(client, gateway):
    seen = []
    ready = threading.Event()

    def tail():
        with Client(*gateway) as c:
            stream = c.events.stream(type="license.issued")
            ready.set()
            for event in stream:
                seen.append(event)
                if event.data.get("name") == "Tail":
                    return

    t = threading.Thread(target=tail, daemon=True)
    t.start()
    ready.wait(5)
    issued = None
    for _ in range(50):  # the tail connects asynchronously: issue until it sees one
        issued = client.licenses.issue("client", "Tail", unique("tail") + "@example.com")
        t.join(0.2)
        if not t.is_alive():
            break
    assert not t.is_alive(), "the tail saw nothing"
    assert seen[-1].type == "license.issued" and seen[-1].subject and issued is not None


# --- async ----------------------------------------------------------------------------------


def test_the_async_client_does_the_same(gateway):
    async def main():
        async with AsyncClient(*gateway) as eb:
            owner = unique("async") + "@example.com"
            issued = await eb.licenses.issue("platform", "Async", owner)
            verifier = Verifier(await eb.licenses.public_key())
            async with AsyncClient(gateway[0], verifier=verifier) as desktop:
                v = await desktop.licenses.validate(issued.key)
                assert v.valid and v.nonce
            ids = [lic.id async for lic in eb.licenses.iter(owner_email=owner, limit=1)]
            assert ids == [issued.id]
            key = unique("async") + ".bin"
            blob = await eb.blobs.upload("client", key, b"x" * 3000)
            assert blob.size == 3000
            assert await eb.blobs.download("client", key) == b"x" * 3000
            with pytest.raises(NotFound):
                await eb.blobs.head("client", key + ".missing")

    asyncio.run(main())
