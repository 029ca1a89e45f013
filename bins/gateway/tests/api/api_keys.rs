use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{events, schema, with_conn};

use crate::helpers::{Go, TestApp, assert_problem, delete, get, send_json};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn create_use_list_show_and_revoke_on_both_backends() {
    for app in TestApp::each().await {
        let res = send_json(
            &app,
            Method::POST,
            "/api/v1/api-keys",
            &serde_json::json!({ "name": "  web platform ", "scopes": ["slack:post", "emails:send", "slack:post"] }),
        )
        .await;
        assert_eq!(res.status(), 201);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let created: serde_json::Value = res.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let key = created["key"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/v1/api-keys/{id}"));
        assert!(key.starts_with("eb_") && key.len() == 55, "{key}");
        assert_eq!(created["name"], "web platform");
        assert_eq!(created["scopes"], serde_json::json!(["emails:send", "slack:post"]));
        assert_eq!(created["status"], "active");
        assert_eq!(created["prefix"], key[..9]);

        // Listing and showing never reveal the key.
        let list = get(&app, "/api/v1/api-keys").await;
        assert_eq!(list.status(), 200);
        let text = list.text().await.unwrap();
        assert!(!text.contains(&key) && !text.contains("digest"));
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(list["items"].as_array().unwrap().iter().any(|k| k["id"] == id.as_str()));
        let shown: serde_json::Value = app.get_json(&location).await;
        assert_eq!(shown["id"], id.as_str());
        assert!(shown.get("key").is_none());

        // The database holds a digest, never the key.
        let mut conn = app.state.pool.get().await.unwrap();
        let (digest, prefix): (String, String) = with_conn!(&mut *conn, |c| schema::api_keys::table
            .find(&id)
            .select((schema::api_keys::digest, schema::api_keys::prefix))
            .first(c)
            .await)
        .unwrap();
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains(&key[3..]) && key.starts_with(&prefix));

        // Revoke: the key stops working at once; revoking again changes nothing.
        let res = delete(&app, &location).await;
        assert_eq!(res.status(), 200);
        let revoked: serde_json::Value = res.json().await.unwrap();
        assert_eq!(revoked["status"], "revoked");
        let first_revoked_at = revoked["revoked_at"].clone();
        assert!(first_revoked_at.is_string());
        let again: serde_json::Value = delete(&app, &location).await.json().await.unwrap();
        assert_eq!(again["revoked_at"], first_revoked_at);

        // Both changes are in the audit trail, without the key.
        let trail = events::for_subject(&mut conn, &format!("api_key:{id}")).await.unwrap();
        let types: Vec<&str> = trail.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, vec!["api_key.created", "api_key.revoked"], "{}", app.backend());
        assert!(
            trail
                .iter()
                .all(|e| { e.actor.as_deref().is_some_and(|a| a.starts_with("api_key:")) })
        );
        assert!(trail.iter().all(|e| !e.data.contains(&key)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_key_requests_are_422_and_unknown_ids_404() {
    let app = TestApp::spawn().await;
    let cases = [
        (serde_json::json!({ "name": "", "scopes": ["*"] }), "invalid_name"),
        (
            serde_json::json!({ "name": "x".repeat(201), "scopes": ["*"] }),
            "invalid_name",
        ),
        (serde_json::json!({ "name": "x", "scopes": [] }), "invalid_scopes"),
        (
            serde_json::json!({ "name": "x", "scopes": ["emails:sned"] }),
            "invalid_scopes",
        ),
        (
            serde_json::json!({ "name": "x", "scopes": ["data:read:bad/name"] }),
            "invalid_scopes",
        ),
        (
            serde_json::json!({ "name": "x", "scopes": ["*"], "expires_at": "2001-01-01T00:00:00Z" }),
            "invalid_expiry",
        ),
        (
            serde_json::json!({ "name": "x", "scopes": ["*"], "expires_at": "tomorrow" }),
            "invalid_body",
        ),
        (serde_json::json!({ "scopes": ["*"] }), "invalid_body"),
    ];
    for (body, code) in cases {
        let res = send_json(&app, Method::POST, "/api/v1/api-keys", &body).await;
        assert_problem(res, 422, code).await;
    }
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = app.admin(method, "/api/v1/api-keys/no-such-id").go().await;
        assert_problem(res, 404, "api_key_not_found").await;
    }
}

/// A key with `api-keys:admin` alone cannot mint a stronger key (the escalation the
/// review found): it may grant only scopes it holds itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_grants_only_scopes_it_holds() {
    let app = TestApp::spawn().await;
    let create = |key: String, scopes: serde_json::Value| {
        let app = &app;
        async move {
            app.as_key(&key, Method::POST, "/api/v1/api-keys")
                .json(&serde_json::json!({ "name": "minted", "scopes": scopes }))
                .go()
                .await
        }
    };
    let (_, admin_only) = app.create_key(&["api-keys:admin"]).await;
    for (scopes, lacking) in [
        (serde_json::json!(["*"]), "*"),
        (serde_json::json!(["licenses:read"]), "licenses:read"),
        (
            serde_json::json!(["api-keys:admin", "blobs:read:web"]),
            "blobs:read:web",
        ),
    ] {
        let body = assert_problem(create(admin_only.clone(), scopes).await, 403, "insufficient_scope").await;
        assert!(
            body["detail"].as_str().unwrap().contains(&format!("`{lacking}`")),
            "{body}"
        );
    }
    // Nothing was created by the refused calls.
    let (_, lister) = app.create_key(&["api-keys:admin", "licenses:read"]).await;
    let minted = create(lister.clone(), serde_json::json!(["licenses:read"])).await;
    assert_eq!(minted.status(), 201);

    // A family covers its qualified forms; a qualified key covers only itself.
    let (_, blobs) = app.create_key(&["api-keys:admin", "blobs:read"]).await;
    for ok in [
        serde_json::json!(["blobs:read:web"]),
        serde_json::json!(["blobs:read:*"]),
    ] {
        assert_eq!(create(blobs.clone(), ok).await.status(), 201);
    }
    let (_, web_only) = app.create_key(&["api-keys:admin", "blobs:read:web"]).await;
    for bad in [serde_json::json!(["blobs:read"]), serde_json::json!(["blobs:read:ai"])] {
        assert_problem(create(web_only.clone(), bad).await, 403, "insufficient_scope").await;
    }
    // A `*` key may grant anything, `*` included.
    assert_eq!(
        create(app.admin_key.clone(), serde_json::json!(["*"])).await.status(),
        201
    );
    let keys: serde_json::Value = app.get_json("/api/v1/api-keys").await;
    let minted = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "minted")
        .count();
    assert_eq!(minted, 4, "{keys}");
}

/// A delegated key cannot outlive itself through a copy, nor take down keys stronger
/// than itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_cannot_outlive_itself_or_revoke_stronger_keys() {
    let app = TestApp::spawn().await;
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let in_a_day = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let created: serde_json::Value = send_json(
        &app,
        Method::POST,
        "/api/v1/api-keys",
        &serde_json::json!({ "name": "leaky", "scopes": ["api-keys:admin", "slack:post"], "expires_at": in_an_hour }),
    )
    .await
    .json()
    .await
    .unwrap();
    let leaky = created["key"].as_str().unwrap().to_owned();
    let mint = |expires: Option<&str>| {
        let mut body = serde_json::json!({ "name": "copy", "scopes": ["slack:post"] });
        if let Some(t) = expires {
            body["expires_at"] = t.into();
        }
        app.as_key(&leaky, Method::POST, "/api/v1/api-keys").json(&body).go()
    };
    for expires in [None, Some(in_a_day.as_str())] {
        let body = assert_problem(mint(expires).await, 403, "expiry_not_allowed").await;
        assert!(body["detail"].as_str().unwrap().contains("expire no later"), "{body}");
    }
    let in_half_an_hour = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    assert_eq!(mint(Some(&in_half_an_hour)).await.status(), 201);

    // It may revoke what it could have made, not the operator's `*` key or others'.
    let (weaker, _) = app.create_key(&["slack:post"]).await;
    let (other, _) = app.create_key(&["licenses:admin"]).await;
    let admin_id: String = {
        let keys: serde_json::Value = app.get_json("/api/v1/api-keys").await;
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["scopes"] == serde_json::json!(["*"]))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let revoke = |id: String| {
        app.as_key(&leaky, Method::DELETE, &format!("/api/v1/api-keys/{id}"))
            .go()
    };
    let body = assert_problem(revoke(admin_id).await, 403, "insufficient_scope").await;
    assert!(body["detail"].as_str().unwrap().contains("`*`"), "{body}");
    assert_problem(revoke(other.clone()).await, 403, "insufficient_scope").await;
    assert_eq!(revoke(weaker).await.status(), 200);
    // The refused revocations changed nothing: the admin key still works.
    let still = get(&app, &format!("/api/v1/api-keys/{other}")).await;
    assert_eq!(still.status(), 200);
    assert_eq!(still.json::<serde_json::Value>().await.unwrap()["status"], "active");
}

/// A storage scope must name a configured namespace: `blobs:read:nosuch` is a 422 naming
/// the scope and the namespaces there are (the wildcard and real names are fine). Data
/// collections come into being on their first write, so their scopes are not checked.
#[tokio::test(flavor = "multi_thread")]
async fn scopes_for_namespaces_that_do_not_exist_are_refused() {
    let app = TestApp::spawn().await;
    let create = |scopes: serde_json::Value| {
        app.admin(Method::POST, "/api/v1/api-keys")
            .json(&serde_json::json!({ "name": "k", "scopes": scopes }))
            .go()
    };
    for bad in ["blobs:read:nosuch", "blobs:write:Web"] {
        let res = create(serde_json::json!(["emails:send", bad])).await;
        let problem = assert_problem(res, 422, "invalid_scopes").await;
        let ns = bad.rsplit(':').next().unwrap();
        assert_eq!(
            problem["detail"],
            format!("`{bad}`: no storage namespace is called `{ns}`; the namespaces are client, web, ai")
        );
        assert_eq!(problem["field"], "scopes");
    }
    let keys: serde_json::Value = app.get_json("/api/v1/api-keys").await;
    assert_eq!(
        keys["items"].as_array().map(Vec::len),
        Some(1),
        "only the admin key: {keys}"
    );
    for ok in ["blobs:read:web", "blobs:write:*", "blobs:read", "data:read:anything"] {
        assert_eq!(create(serde_json::json!([ok])).await.status(), 201, "{ok}");
    }
}

/// Keys page like every list (issue 18): `limit` 1 to 500, opaque cursors, newest first
/// unless `order=asc`; anything else is 400 `invalid_query` naming the parameter.
#[tokio::test(flavor = "multi_thread")]
async fn keys_are_listed_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let (first, _) = app.create_key(&["events:read"]).await;
    let (second, _) = app.create_key(&["events:read"]).await;
    let page: serde_json::Value = app.get_json("/api/v1/api-keys?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], second.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_ne!(cursor, second, "the cursor is opaque");
    let next: serde_json::Value = app.get_json(&format!("/api/v1/api-keys?limit=1&cursor={cursor}")).await;
    assert_eq!(next["items"][0]["id"], first.as_str());
    let oldest: serde_json::Value = app.get_json("/api/v1/api-keys?limit=1&order=asc").await;
    assert_ne!(oldest["items"][0]["id"], second.as_str());
    let all: serde_json::Value = app.get_json("/api/v1/api-keys").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "the admin key and two more");
    assert!(all.get("next_cursor").is_none());
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%25%25", "cursor"),
    ] {
        let res = crate::helpers::get(&app, &format!("/api/v1/api-keys?{query}")).await;
        let problem = assert_problem(res, 400, "invalid_query").await;
        assert_eq!(problem["field"], field, "{query}");
    }
}
