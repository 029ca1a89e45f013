"""The console in a real browser, by roles and accessible names."""

from __future__ import annotations

import hashlib
import os
import re
import uuid

import httpx
from playwright.sync_api import expect

from conftest import sign_in


def section(page, name):
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=name, exact=True).click()

SECTIONS = ["Overview", "Licences", "Emails", "Slack", "Storage", "Events", "API keys", "Rules/Webhooks"]


def test_console_answers_carry_a_strict_policy(gateway):
    url, _ = gateway
    for path in ["/console/", "/console/app.js", "/console/no-such-file.js"]:
        res = httpx.get(url + path)
        csp = res.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "script-src 'self';" in csp, path
        assert "default-src 'none'" in csp, path
        assert res.headers["x-content-type-options"] == "nosniff", path
        assert res.headers["referrer-policy"] == "no-referrer", path
    assert httpx.get(url + "/console/no-such-file.js").status_code == 404


def test_the_console_refuses_to_be_framed(browser, gateway):
    url, _ = gateway
    context = browser.new_context()
    tab = context.new_page()
    messages: list[str] = []
    tab.on("console", lambda m: messages.append(m.text))
    tab.set_content(f'<iframe src="{url}/console/" title="framed"></iframe>')
    tab.wait_for_timeout(1500)
    framed = [f for f in tab.frames if f != tab.main_frame]
    assert all(f.locator("#api-key").count() == 0 for f in framed)
    assert any("frame-ancestors" in m for m in messages), messages
    context.close()


def test_a_wrong_key_is_refused_and_the_form_stays(page):
    page.goto("/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("eb_this_is_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("not accepted"))
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_signing_in_by_keyboard_shows_every_section(page, gateway, seeded):
    _, key = gateway
    page.goto("/console/")
    # The key field has focus; Enter submits.
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    nav = page.get_by_role("navigation", name="Sections")
    for name in SECTIONS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    # The key is in no URL and no cookie.
    assert key not in page.url
    assert not page.context.cookies()
    # The overview counts by status.
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    licences = page.get_by_role("region", name="Licences")
    expect(licences.get_by_role("cell", name="active")).to_be_visible()
    emails = page.get_by_role("region", name="Emails (24 h)")
    expect(emails.get_by_role("img", name=re.compile("Emails per hour"))).to_be_visible()
    storage = page.get_by_role("region", name="Storage")
    expect(storage.get_by_role("link", name="web")).to_be_visible()
    expect(page.get_by_role("region", name="Jobs waiting")).to_be_visible()
    # Keyboard: focus a link and follow it with Enter.
    nav.get_by_role("link", name="Licences").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Licences")).to_be_visible()


def test_licences_search_shows_korean_names_and_local_times(page, gateway, seeded):
    sign_in(page, gateway[1])
    section(page, "Licences")
    name = seeded["licence"]["name"]
    page.get_by_role("searchbox").fill(name.split()[0])
    page.get_by_role("button", name="Search", exact=True).click()
    link = page.get_by_role("link", name=name)
    expect(link).to_be_visible()
    # Korean text is marked as such inside the English page.
    expect(link.locator("[lang=ko]")).to_have_text(name)
    # Search by owner: a whole address is asked of the API.
    page.get_by_role("searchbox").fill(seeded["licence"]["owner_email"])
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("table").get_by_role("link")).to_have_count(1)
    expect(page.get_by_role("link", name=name)).to_be_visible()
    # Search by key prefix.
    page.get_by_role("searchbox").fill(seeded["licence"]["key"][:8])
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("link", name=name)).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    link.click()
    detail = page.get_by_role("region", name="Licence")
    expect(detail.get_by_role("heading", name=re.compile("김민준의 라이선스"))).to_be_visible()
    # Times are in the viewer's zone (Seoul here), named.
    created = detail.locator("time").first
    expect(created).to_contain_text("GMT+9")


def test_suspend_goes_through_a_confirmation_and_the_api_reports_it(page, gateway, api):
    tag = uuid.uuid4().hex[:6]
    issued = api.post("/api/v1/licenses", json={"product": "platform", "name": f"정지 테스트 {tag}",
                                                "owner_email": f"s-{tag}@example.com"}).json()
    sign_in(page, gateway[1])
    page.goto(f"/console/#/licenses/{issued['id']}")
    detail = page.get_by_role("region", name="Licence")
    # Escape cancels: nothing changes.
    detail.get_by_role("button", name="Suspend").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(issued["name"])
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert api.get(f"/api/v1/licenses/{issued['id']}").json()["status"] == "active"
    # Confirming suspends.
    detail.get_by_role("button", name="Suspend").click()
    dialog.get_by_role("button", name="Suspend").click()
    expect(detail.get_by_role("button", name="Reinstate")).to_be_visible()
    assert api.get(f"/api/v1/licenses/{issued['id']}").json()["status"] == "suspended"
    # And back.
    detail.get_by_role("button", name="Reinstate").click()
    dialog.get_by_role("button", name="Reinstate").click()
    expect(detail.get_by_role("button", name="Suspend")).to_be_visible()
    expect(detail.get_by_role("button", name="Renew")).to_be_visible()
    expect(detail.get_by_role("button", name="Revoke")).to_be_visible()
    assert api.get(f"/api/v1/licenses/{issued['id']}").json()["status"] == "active"


def test_issuing_a_licence_shows_its_key_once_with_a_copy_button(page, gateway):
    sign_in(page, gateway[1])
    section(page, "Licences")
    page.get_by_text("Issue a licence").click()
    page.get_by_label("Licence name").fill("이서연 팀 라이선스")
    page.get_by_label("Owner email").fill("seoyeon@example.com")
    page.get_by_role("button", name="Issue licence").click()
    shown = page.get_by_role("region", name="Licence key")
    expect(shown).to_contain_text("shown only this once")
    expect(shown.get_by_role("button", name="Copy")).to_be_visible()
    key = shown.locator("code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{5}(-[A-Z0-9]{5}){6}", key), key
    # Copy puts it on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    shown.get_by_role("button", name="Copy").click()
    expect(shown.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    # Leaving the page and coming back: the key is not shown again.
    section(page, "Overview")
    section(page, "Licences")
    expect(page.get_by_role("region", name="Licence key")).to_have_count(0)


def test_a_refused_action_shows_the_problem_not_a_broken_page(page, gateway, api):
    issued = api.post("/api/v1/licenses", json={"product": "client", "name": "갱신 실패",
                                                "owner_email": "renew@example.com"}).json()
    sign_in(page, gateway[1])
    page.goto(f"/console/#/licenses/{issued['id']}")
    detail = page.get_by_role("region", name="Licence")
    detail.get_by_label("Renew by").fill("forever")
    detail.get_by_role("button", name="Renew").click()
    page.get_by_role("dialog").get_by_role("button", name="Renew").click()
    expect(detail.get_by_role("alert")).to_contain_text("duration")
    assert api.get(f"/api/v1/licenses/{issued['id']}").json()["expires_at"] is None


def test_emails_show_a_timeline_and_the_html_in_a_sandboxed_frame(page, gateway, seeded):
    sign_in(page, gateway[1])
    section(page, "Emails")
    subject = f"환영합니다 {seeded['tag']}"
    page.get_by_role("link", name=subject).click()
    expect(page.get_by_role("list", name="Timeline")).to_contain_text("email.queued")
    frame = page.locator("iframe[title='Email HTML preview']")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe[title='Email HTML preview']").get_by_role("heading")).to_have_text(
        f"안녕하세요 {seeded['tag']}")


def test_slack_lists_messages_and_previews_them(page, gateway, seeded):
    sign_in(page, gateway[1])
    section(page, "Slack")
    title = f"Disk almost full {seeded['tag']}"
    page.get_by_role("link", name=title).click()
    preview = page.get_by_role("figure", name="Slack preview")
    expect(preview).to_contain_text(title)
    expect(preview).to_contain_text("93% on db-1")


def test_storage_browses_uploads_downloads_and_deletes(page, gateway, seeded, tmp_path):
    sign_in(page, gateway[1])
    section(page, "Storage")
    page.get_by_role("navigation", name="Namespaces").get_by_role("link", name="web").click()
    folder = f"console-{seeded['tag']}/"
    page.get_by_role("link", name=folder.rstrip("/")).click()
    expect(page.get_by_role("cell", name="hello.txt", exact=True)).to_be_visible()
    # Upload with progress.
    upload = tmp_path / "보고서.txt"
    upload.write_bytes("월간 보고서".encode() * 1000)
    page.get_by_label("File").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status").filter(has_text="Uploaded")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute("value", "100")
    expect(page.get_by_role("cell", name="보고서.txt", exact=True)).to_be_visible()
    # Download.
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download {folder}hello.txt").click()
    assert open(info.value.path(), "rb").read() == b"hello console"
    # Delete, confirmed.
    page.get_by_role("button", name=f"Delete {folder}보고서.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("cell", name="보고서.txt", exact=True)).to_have_count(0)


def test_a_large_file_goes_up_in_parts(page, gateway, seeded, api, tmp_path):
    sign_in(page, gateway[1])
    section(page, "Storage")
    page.get_by_role("navigation", name="Namespaces").get_by_role("link", name="web").click()
    big = tmp_path / f"model-{seeded['tag']}.bin"
    data = os.urandom(17 * 1024 * 1024)
    big.write_bytes(data)
    page.get_by_label("File").set_input_files(str(big))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status").filter(has_text="Uploaded")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute("value", "100")
    head = api.head(f"/api/v1/blobs/web/{big.name}")
    assert head.status_code == 200
    assert head.headers["x-checksum-sha256"] == hashlib.sha256(data).hexdigest()
    # A multipart object's ETag names its parts: 17 MiB in 8 MiB parts is three.
    assert head.headers["etag"].endswith('-3"'), head.headers["etag"]


def test_crafted_keys_and_ids_never_reach_another_route(page, gateway, api):
    # A key to be attacked, and a file shaped like a listing whose object key climbs to it.
    victim = api.post("/api/v1/api-keys", json={"name": "victim", "scopes": ["events:read"]}).json()
    evil = {"objects": [{"key": f"../../../api-keys/{victim['id']}", "size": 1,
                         "last_modified": "2026-12-01T00:00:00Z"}]}
    put = api.put("/api/v1/blobs/web/evil.json", json=evil)
    assert put.status_code in (200, 201), put.text
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url)))
    sign_in(page, gateway[1])
    # The namespace from the address is one segment: `web/evil.json` is no namespace.
    page.goto("/console/#/storage/web%2Fevil.json")
    expect(page.get_by_role("heading", name="Namespace web/evil.json")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    # A licence id from the address is one segment too.
    page.goto("/console/#/licenses/..%2Fapi-keys%2F" + victim["id"])
    page.wait_for_timeout(500)
    assert not any("/api/v1/api-keys/" in u for m, u in sent if m != "GET"), sent
    assert not any(u.endswith("/api/v1/blobs/web/evil.json") for m, u in sent), sent
    # The path builders refuse dot segments outright.
    verdicts = page.evaluate("""async () => {
        const api = await import('/console/api.js');
        const tryIt = (f) => { try { f(); return 'built'; } catch { return 'refused'; } };
        return [tryIt(() => api.seg('a/../b')), tryIt(() => api.one('..')),
                tryIt(() => api.guard('/api/v1/blobs/a/../../api-keys/x')), tryIt(() => api.seg('a/b.txt'))];
    }""")
    assert verdicts == ["refused", "refused", "refused", "built"]
    assert api.get(f"/api/v1/api-keys/{victim['id']}").json()["status"] == "active"


def test_the_live_tail_shows_an_event_made_after_it_opened(page, gateway, api):
    sign_in(page, gateway[1])
    section(page, "Events")
    page.get_by_label("Event type").fill("license.*")
    page.get_by_role("button", name="Apply filter").click()
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    tag = uuid.uuid4().hex[:6]
    api.post("/api/v1/slack/messages", json={"level": "info", "title": f"not a licence {tag}", "channel": "#ops"})
    issued = api.post("/api/v1/licenses", json={"product": "client", "name": f"tail {tag}",
                                                "owner_email": f"t-{tag}@example.com"}).json()
    table = page.get_by_role("table", name="Live events")
    expect(table.get_by_role("cell", name=f"license:{issued['id']}")).to_be_visible()
    expect(table.get_by_role("cell", name="license.issued").first).to_be_visible()
    expect(table.get_by_role("cell", name=re.compile("^slack"))).to_have_count(0)


def test_api_keys_are_created_once_and_revoked_after_a_confirmation(page, gateway, api):
    sign_in(page, gateway[1])
    section(page, "API keys")
    tag = uuid.uuid4().hex[:6]
    page.get_by_label("Key name").fill(f"console {tag}")
    page.get_by_label("Scopes").fill("licenses:read")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("region", name="API key")
    expect(shown.get_by_role("button", name="Copy")).to_be_visible()
    secret = shown.locator("code").inner_text()
    assert httpx.get(f"{gateway[0]}/api/v1/licenses", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    page.get_by_role("button", name=f"Revoke console {tag}").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("button", name=f"Revoke console {tag}")).to_have_count(0)
    assert httpx.get(f"{gateway[0]}/api/v1/licenses", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_rules_and_webhooks_list_with_delivery_logs(page, gateway, seeded):
    sign_in(page, gateway[1])
    section(page, "Rules/Webhooks")
    expect(page.get_by_role("table", name="Rules").get_by_role("cell", name=seeded["rule"]["name"])).to_be_visible()
    expect(page.get_by_role("table", name="Rules").get_by_role("cell", name="Slack #ops").first).to_be_visible()
    hook = seeded["webhook"]
    page.get_by_role("link", name=hook["url"]).click()
    expect(page.get_by_role("heading", name="Delivery log")).to_be_visible()


def test_a_narrow_key_sees_which_scope_a_section_needs(page, api, seeded):
    narrow = api.post("/api/v1/api-keys", json={"name": "narrow", "scopes": ["licenses:read"]}).json()["key"]
    sign_in(page, narrow)
    expect(page.get_by_role("region", name="Emails (24 h)")).to_contain_text("needs the emails:read scope")
    section(page, "Licences")
    expect(page.get_by_role("link", name=seeded["licence"]["name"])).to_be_visible()
    section(page, "Emails")
    expect(page.get_by_text("This section needs the emails:read scope.")).to_be_visible()
    section(page, "API keys")
    expect(page.get_by_text("This section needs the api-keys:admin scope.")).to_be_visible()


def test_signing_out_forgets_the_key(page, gateway):
    sign_in(page, gateway[1])
    # (wait_for_function would eval a string, which the console's CSP refuses.)
    for _ in range(50):
        if page.evaluate("sessionStorage.length") == 1:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("sessionStorage.length") == 1
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()
