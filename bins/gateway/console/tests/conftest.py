"""The console's browser tests: Debian's chromium (``/usr/bin/chromium``, or
``EB_CHROMIUM``) driven by Playwright, against the gateway at ``EB_URL`` whose key
``EB_KEY`` holds every scope (the Rust test ``console::the_console_passes_its_browser_tests``
starts one with the dev mailbox and Slack sink and runs these)."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("EB_CHROMIUM", "/usr/bin/chromium")
# CI runs these beside the whole workspace's tests on two cores: be patient.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def gateway():
    url, key = os.environ.get("EB_URL"), os.environ.get("EB_KEY")
    if not url or not key:
        pytest.fail("set EB_URL and EB_KEY (the Rust test harness does)")
    return url.rstrip("/"), key


@pytest.fixture(scope="session")
def api(gateway):
    url, key = gateway
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def seeded(api):
    """One of each thing the pages show, made through the API."""
    tag = uuid.uuid4().hex[:8]
    licence = api.post("/api/v1/licenses", json={
        "product": "client", "name": f"김민준의 라이선스 {tag}", "owner_email": f"minjun-{tag}@example.com",
        "duration": "1y",
    })
    assert licence.status_code == 201, licence.text
    email = api.post("/api/v1/emails", json={
        "to": f"support-{tag}@example.com", "subject": f"환영합니다 {tag}",
        "html": f"<h1>안녕하세요 {tag}</h1><p style=\"color: #333\">Welcome aboard.</p>",
        "text": f"안녕하세요 {tag}",
    })
    assert email.status_code == 202, email.text
    slack = api.post("/api/v1/slack/messages", json={
        "level": "warning", "title": f"Disk almost full {tag}", "text": "93% on db-1", "channel": "#ops",
    })
    assert slack.status_code == 202, slack.text
    blob = api.put(f"/api/v1/blobs/web/console-{tag}/hello.txt", content=b"hello console",
                   headers={"Content-Type": "text/plain"})
    assert blob.status_code in (200, 201), blob.text
    key = api.post("/api/v1/api-keys", json={"name": f"reporting {tag}", "scopes": ["events:read"]})
    assert key.status_code == 201, key.text
    hook = api.post("/api/v1/webhooks", json={
        "url": f"https://hooks.example.com/{tag}", "event_types": ["license.*"], "description": f"crm {tag}",
    })
    assert hook.status_code == 201, hook.text
    rule = api.post("/api/v1/rules", json={
        "name": f"알림 {tag}", "event_type": "license.revoked",
        "actions": {"slack": {"level": "warning", "title": "{{ event.type }}", "channel": "#ops"}},
    })
    assert rule.status_code == 201, rule.text
    return {
        "tag": tag,
        "rule": rule.json(),
        "licence": licence.json(),
        "email": email.json(),
        "slack": slack.json(),
        "key": key.json(),
        "webhook": hook.json(),
    }


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, gateway):
    """A fresh tab in the Seoul time zone; any Content-Security-Policy violation or
    script error fails the test."""
    url, _ = gateway
    context = browser.new_context(base_url=url, timezone_id="Asia/Seoul", locale="en-US",
                                  accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab
    context.close()
    assert not problems, problems


def sign_in(page, key):
    page.goto("/console/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
