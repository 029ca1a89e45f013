use chrono::Utc;
use license_core::cert::{Expect, Verifier};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Go, TestApp, assert_problem, get, item_strs, json_of, post_anon, post_json};

async fn issue(app: &TestApp, body: Value) -> (Value, String) {
    let res = post_json(app, "/api/v1/licenses", &body).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let v: Value = res.json().await.unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    (v, key)
}

fn client_licence() -> Value {
    json!({
        "product": "client",
        "name": "Acme desktop seats",
        "owner_email": "it@acme.example",
        "duration": "365d",
        "max_machines": 1,
        "entitlements": ["export", "sso"],
        "metadata": {"crm_id": 42},
    })
}

/// A holder's call (`validate`, `activate`, ...): POST `/api/v1/licenses/{call}` with no API key.
async fn holder(app: &TestApp, call: &str, body: Value) -> reqwest::Response {
    post_anon(app, &format!("/api/v1/licenses/{call}"), &body).await
}

/// A holder's `validate` call, returning the answer.
async fn validate(app: &TestApp, body: Value) -> Value {
    json_of(holder(app, "validate", body).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_licence_story_over_http_on_both_backends() {
    for app in TestApp::each().await {
        let (lic, key) = issue(&app, client_licence()).await;
        let id = lic["id"].as_str().unwrap().to_owned();
        assert_eq!(lic["status"], "active");
        assert_eq!(lic["key_prefix"], key[..5]);
        assert_eq!(lic["metadata"]["crm_id"], 42);
        assert_eq!(key.len(), 41);

        // The holder validates, activates, heartbeats and checks out with the key alone.
        let v = validate(&app, json!({"key": key, "product": "client"})).await;
        assert_eq!(
            (v["valid"].as_bool(), v["code"].as_str()),
            (Some(true), Some("valid")),
            "{v}"
        );
        assert!(v["license"].get("key").is_none() && v["license"].get("key_digest").is_none());

        let machine = |fingerprint: &str| json!({"key": key, "fingerprint": fingerprint});
        let res = holder(
            &app,
            "activate",
            json!({"key": key, "fingerprint": "fp-1", "platform": "windows"}),
        )
        .await;
        assert_eq!(res.status(), 201);
        assert_problem(holder(&app, "activate", machine("fp-1")).await, 409, "machine_exists").await;
        assert_problem(
            holder(&app, "activate", machine("fp-2")).await,
            422,
            "too_many_machines",
        )
        .await;
        assert_eq!(holder(&app, "heartbeat", machine("fp-1")).await.status(), 200);

        let res = holder(
            &app,
            "checkout",
            json!({"key": key, "fingerprint": "fp-1", "ttl": "14d"}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let out: Value = res.json().await.unwrap();
        let pk = json_of(app.client.get(app.url("/api/v1/licenses/public-key")).go().await).await;
        assert_eq!(pk["algorithm"], "Ed25519");
        let verifier = Verifier::new()
            .with_base64_key(pk["kid"].as_str().unwrap(), pk["public_key"].as_str().unwrap())
            .unwrap();
        let payload = verifier
            .verify(
                out["certificate"].as_str().unwrap(),
                Utc::now(),
                Expect {
                    product: Some("client"),
                    fingerprint: Some("fp-1"),
                    entitlements: &["sso"],
                },
            )
            .unwrap();
        assert_eq!(payload.license_id, id);

        // The admin sees the machine, frees it, and runs the lifecycle.
        let machines: Value = app.get_json(&format!("/api/v1/licenses/{id}/machines")).await;
        let machine_id = machines["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(machines["items"][0]["platform"], "windows");
        let admin = |m: Method, path: String| app.admin(m, &path);
        let res = admin(Method::DELETE, format!("/api/v1/licenses/{id}/machines/{machine_id}"))
            .go()
            .await;
        assert_eq!(res.status(), 204);
        let res = admin(Method::DELETE, format!("/api/v1/licenses/{id}/machines/{machine_id}"))
            .go()
            .await;
        assert_problem(res, 404, "machine_not_found").await;

        let res = admin(Method::POST, format!("/api/v1/licenses/{id}/suspend")).go().await;
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "suspended");
        let v = validate(&app, json!({"key": key})).await;
        assert_eq!(
            (v["valid"].as_bool(), v["code"].as_str()),
            (Some(false), Some("suspended"))
        );
        assert_problem(holder(&app, "activate", machine("fp-3")).await, 403, "suspended").await;
        assert_problem(holder(&app, "checkout", json!({"key": key})).await, 403, "suspended").await;
        // A client that only heartbeats learns of the suspension too.
        assert_problem(holder(&app, "heartbeat", machine("fp-1")).await, 403, "suspended").await;
        let res = admin(Method::POST, format!("/api/v1/licenses/{id}/suspend")).go().await;
        assert_problem(res, 409, "invalid_transition").await;
        let res = admin(Method::POST, format!("/api/v1/licenses/{id}/reinstate"))
            .go()
            .await;
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "active");

        let renew = |duration: &str| {
            admin(Method::POST, format!("/api/v1/licenses/{id}/renew")).json(&json!({ "duration": duration }))
        };
        assert_eq!(renew("30d").go().await.status(), 200);
        let res = admin(Method::PATCH, format!("/api/v1/licenses/{id}"))
            .json(&json!({"name": "Renamed", "max_machines": null, "expires_at": null}))
            .go()
            .await;
        let patched: Value = res.json().await.unwrap();
        assert_eq!(
            (
                patched["name"].as_str(),
                patched["max_machines"].as_null(),
                patched["expires_at"].as_null()
            ),
            (Some("Renamed"), Some(()), Some(()))
        );
        let res = admin(Method::PATCH, format!("/api/v1/licenses/{id}"))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"entitlements":["export"]}"#)
            .go()
            .await;
        assert_eq!(res.status(), 200, "merge-patch media type accepted");

        let res = admin(Method::POST, format!("/api/v1/licenses/{id}/revoke")).go().await;
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "revoked");
        let v = validate(&app, json!({"key": key})).await;
        assert_eq!(v["code"], "revoked");
        assert_problem(renew("1d").go().await, 409, "invalid_transition").await;

        // Listing with filters and a cursor.
        issue(
            &app,
            json!({"product": "platform", "name": "Web", "owner_email": "web@acme.example"}),
        )
        .await;
        let page = app.get_json("/api/v1/licenses?product=platform&limit=1").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        assert_eq!(page["items"][0]["product"], "platform");
        let res = get(&app, "/api/v1/licenses?status=gone").await;
        assert_problem(res, 400, "invalid_query").await;
        // The paging rule: limit 1 to 500, anything else 400 invalid_query naming it.
        for bad in ["0", "501"] {
            let res = get(&app, &format!("/api/v1/licenses?limit={bad}")).await;
            let body = assert_problem(res, 400, "invalid_query").await;
            assert_eq!(body["field"], "limit");
        }

        // Newest first unless order=asc, and each cursor continues its own order.
        let names = |page: &Value| item_strs(page, "name");
        let newest = app.get_json("/api/v1/licenses?limit=1").await;
        assert_eq!(names(&newest), ["Web"]);
        let oldest = app.get_json("/api/v1/licenses?limit=1&order=asc").await;
        assert_eq!(names(&oldest), ["Renamed"]);
        let cursor = oldest["next_cursor"].as_str().unwrap();
        let after = app.get_json(&format!("/api/v1/licenses?limit=5&cursor={cursor}")).await;
        assert_eq!(names(&after).last().map(String::as_str), Some("Web"), "{after}");
        let res = get(&app, &format!("/api/v1/licenses?order=desc&cursor={cursor}")).await;
        let body = assert_problem(res, 400, "invalid_query").await;
        assert_eq!(body["field"], "cursor");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn holder_calls_refuse_bad_keys_and_bad_input_clearly() {
    let app = TestApp::spawn().await;
    let v = validate(&app, json!({"key": "ABCDE-FGHJK"})).await;
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str()),
        (Some(false), Some("not_found"))
    );
    let unknown = license_core::key::LicenseKey::generate().unwrap();
    let v = validate(&app, json!({"key": unknown.as_str()})).await;
    assert_eq!(v["code"], "not_found");

    let machine = |key: &str, fingerprint: &str| json!({"key": key, "fingerprint": fingerprint});
    let res = holder(&app, "activate", machine(unknown.as_str(), "x")).await;
    assert_problem(res, 401, "license_key_invalid").await;
    let res = holder(&app, "activate", machine("typo", "x")).await;
    let body = assert_problem(res, 401, "license_key_invalid").await;
    assert!(body["detail"].as_str().unwrap().contains("35 symbols"));
    let res = holder(&app, "deactivate", machine(unknown.as_str(), "x")).await;
    assert_problem(res, 401, "license_key_invalid").await;
    let res = holder(&app, "validate", json!({"fingerprint": "x"})).await;
    assert_problem(res, 422, "invalid_body").await;
    let res = holder(&app, "validate", json!({"key": "k", "product": "desktop"})).await;
    assert_problem(res, 422, "invalid_body").await;

    let (_, key) = issue(&app, client_licence()).await;
    let res = holder(&app, "activate", machine(&key, "")).await;
    let body = assert_problem(res, 422, "invalid_field").await;
    assert_eq!(body["field"], "fingerprint");
    let res = holder(&app, "heartbeat", machine(&key, "never-activated")).await;
    assert_problem(res, 404, "machine_not_found").await;
    let res = holder(&app, "checkout", json!({"key": key, "ttl": "5y"})).await;
    assert_problem(res, 422, "invalid_field").await;

    for body in [
        json!({"product": "client", "name": "x", "owner_email": "nope"}),
        json!({"product": "client", "name": "x", "owner_email": "a@b.example", "duration": "forever"}),
        json!({"product": "client", "name": "x", "owner_email": "a@b.example", "max_machines": 0}),
    ] {
        let res = post_json(&app, "/api/v1/licenses", &body).await;
        assert_problem(res, 422, "invalid_field").await;
    }
    let body = json!({"product": "server", "name": "x", "owner_email": "a@b.example"});
    assert_problem(post_json(&app, "/api/v1/licenses", &body).await, 422, "invalid_body").await;
    assert_problem(get(&app, "/api/v1/licenses/nope").await, 404, "license_not_found").await;
}

/// An active licence past its `expires_at` says `expired` in every view (get, list,
/// validate's licence), `status=expired` finds it and `status=active` leaves it out;
/// renewing makes it `active` again.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_licence_says_so_in_every_view_on_both_backends() {
    for app in TestApp::each().await {
        let (soon, key) = issue(
            &app,
            json!({"product": "client", "name": "Short", "owner_email": "a@example.com", "duration": "1s"}),
        )
        .await;
        assert_eq!(soon["status"], "active");
        let (never, _) = issue(
            &app,
            json!({"product": "client", "name": "Forever", "owner_email": "b@example.com"}),
        )
        .await;
        let (soon, never) = (soon["id"].as_str().unwrap(), never["id"].as_str().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(1300)).await;

        let got = app.get_json(&format!("/api/v1/licenses/{soon}")).await;
        assert_eq!(got["status"], "expired", "{got}");
        let ids = |page: &Value| item_strs(page, "id");
        let all = app.get_json("/api/v1/licenses").await;
        let shown = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == soon)
            .unwrap();
        assert_eq!(shown["status"], "expired");
        assert_eq!(ids(&app.get_json("/api/v1/licenses?status=expired").await), [soon]);
        assert_eq!(ids(&app.get_json("/api/v1/licenses?status=active").await), [never]);

        let v = validate(&app, json!({ "key": key })).await;
        assert_eq!(v["code"], "expired");
        assert_eq!(v["license"]["status"], "expired");

        let res = post_json(
            &app,
            &format!("/api/v1/licenses/{soon}/renew"),
            &json!({"duration": "30d"}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let renewed: Value = res.json().await.unwrap();
        assert_eq!(renewed["status"], "active", "{renewed}");
        assert!(ids(&app.get_json("/api/v1/licenses?status=expired").await).is_empty());
    }
}

mod limits;
mod policies;
mod signed;
