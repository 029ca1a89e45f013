//! Policies over HTTP: scopes, a licence taking its terms from one, a change seen at
//! once, and the refusals.

use super::*;
use crate::helpers::{delete, send_json};

#[tokio::test(flavor = "multi_thread")]
async fn policies_over_http_on_both_backends() {
    for app in TestApp::each().await {
        let b = app.backend();
        let (_, reader) = app.create_key(&["licenses:read"]).await;
        let pro = json!({
            "product": "client", "name": "Pro", "max_machines": 3,
            "heartbeat_interval_secs": 600, "heartbeat_cull": true, "heartbeat_resurrection_secs": 3600,
            "grace_period": "7d", "expiry_strategy": "restrict", "duration": "365d", "entitlements": ["pro"],
        });
        // Only `licenses:admin` creates; `licenses:read` reads.
        let res = app
            .as_key(&reader, Method::POST, "/api/v1/policies")
            .json(&pro)
            .go()
            .await;
        assert_problem(res, 403, "insufficient_scope").await;
        let res = post_json(&app, "/api/v1/policies", &pro).await;
        assert_eq!(res.status(), 201, "{b:?}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let policy: Value = res.json().await.unwrap();
        assert_eq!(location, format!("/api/v1/policies/{}", policy["id"].as_str().unwrap()));
        assert_eq!(
            (policy["grace_period"].as_str(), policy["duration"].as_str()),
            (Some("7d"), Some("365d"))
        );
        let read = |path: &str| app.as_key(&reader, Method::GET, path).go();
        assert_eq!(read(&location).await.status(), 200);

        // A licence naming it takes its terms (the policy's duration sets the expiry).
        let (lic, _) = issue(
            &app,
            json!({"product": "client", "name": "Acme", "owner_email": "it@acme.example", "policy_id": policy["id"]}),
        )
        .await;
        assert_eq!(lic["max_machines"], 3);
        assert_eq!(lic["heartbeat_cull"], true);
        assert_eq!(lic["grace_period"], "7d");
        assert!(
            lic["expires_at"].is_string() && lic["grace_ends_at"].is_string(),
            "{lic}"
        );
        let res = send_json(
            &app,
            Method::PATCH,
            &location,
            &json!({"max_machines": 5, "grace_period": null}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let now = app
            .get_json(&format!("/api/v1/licenses/{}", lic["id"].as_str().unwrap()))
            .await;
        assert_eq!(
            (now["max_machines"].as_i64(), now["grace_period"].is_null()),
            (Some(5), true),
            "{now}"
        );

        // Refusals: unknown fields and values, another product's policy, deleting one in use.
        let body = json!({"product": "client", "name": "x", "expiry_strategy": "forever"});
        assert_problem(post_json(&app, "/api/v1/policies", &body).await, 422, "invalid_body").await;
        let body = json!({"product": "client", "name": "x", "grace_period": "soon"});
        let p = assert_problem(post_json(&app, "/api/v1/policies", &body).await, 422, "invalid_field").await;
        assert_eq!(p["field"], "grace_period");
        let body = json!({"product": "platform", "name": "x", "owner_email": "a@b.example", "policy_id": policy["id"]});
        let p = assert_problem(post_json(&app, "/api/v1/licenses", &body).await, 422, "invalid_field").await;
        assert_eq!(p["field"], "policy_id");
        assert_problem(delete(&app, &location).await, 409, "policy_in_use").await;
        assert_problem(read("/api/v1/policies/nope").await, 404, "policy_not_found").await;
        let list = app.get_json("/api/v1/policies?product=client&limit=1").await;
        assert_eq!(list["items"][0]["licenses_count"], 1, "{list}");
        assert_problem(read("/api/v1/policies?limit=0").await, 400, "invalid_query").await;
    }
}
