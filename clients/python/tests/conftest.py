"""The gateway the tests talk to: ``EB_URL`` and ``EB_KEY`` (a key holding every scope)
when the caller runs one (the Rust test harness does), else a gateway binary started
here on SQLite with the dev mailbox and Slack sink (``EB_GATEWAY_BIN``, or the debug
build under ``CARGO_TARGET_DIR``)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest


def _binary() -> Path:
    if os.environ.get("EB_GATEWAY_BIN"):
        return Path(os.environ["EB_GATEWAY_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[3] / "target")
    return Path(target) / "debug" / "gateway"


@pytest.fixture(scope="session")
def gateway():
    if os.environ.get("EB_URL") and os.environ.get("EB_KEY"):
        yield os.environ["EB_URL"], os.environ["EB_KEY"]
        return
    binary = _binary()
    if not binary.exists():
        pytest.fail(f"no gateway: set EB_URL and EB_KEY, or build {binary} (cargo build -p gateway)")
    with tempfile.TemporaryDirectory() as data:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {
            **os.environ,
            "SECRET_KEY": "python-client-tests-secret-0123456789",
            "DATA_DIR": data,
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "MAIL_TRANSPORT": "dev",
            "SLACK_TRANSPORT": "dev",
            "LOG_LEVEL": "warn",
        }
        key = subprocess.run(
            [str(binary), "api-keys", "create", "--name", "python-tests", "--scopes", "*"],
            env=env, cwd=data, check=True, capture_output=True, text=True,
        ).stdout.strip()
        proc = subprocess.Popen([str(binary), "serve"], env=env, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield url, key
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture()
def client(gateway):
    from event_bridge import Client

    url, key = gateway
    with Client(url, key) as c:
        yield c
