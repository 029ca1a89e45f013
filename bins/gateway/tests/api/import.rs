//! `gateway import licenses FILE`: the binary imports a JSON Lines export of the original
//! service, and a gateway on that database validates the old keys over HTTP.

use serde_json::{Value, json};
use shared_db::testing::TestDb;

use crate::cli::run;
use crate::helpers::{Go, SECRET, TestApp};

const OLD_KEY: &str = "OLD-7f3a9c2e-41b8-4d5e";

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_old_key_validates_over_http() {
    let db = TestDb::sqlite().await;
    let url = format!("sqlite://{}", db.url.sqlite_file().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("licenses.jsonl");
    let lines = [
        json!({"key": OLD_KEY, "product": "client", "name": "Acme", "owner_email": "it@acme.example",
               "expires_at": "2099-12-31 00:00:00", "max_machines": 2, "entitlements": "[\"sso\"]",
               "metadata": null, "created_at": "2020-02-02 12:00:00"}),
        json!({"key": "OLD-suspended-000001", "product": "platform", "name": "Beta",
               "owner_email": "ops@beta.example", "status": "suspended"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let vars = [("DATABASE_URL", url.as_str()), ("SECRET_KEY", SECRET)];
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "licenses", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(dir.path(), &vars, &args)
    };
    let out_text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let dry = import(&["--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert_eq!(out_text(&dry), "imported 2, unchanged 0 (dry run)\n");
    let done = import(&[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(out_text(&done), "imported 2, unchanged 0\n");
    let again = import(&[]);
    assert_eq!(out_text(&again), "imported 0, unchanged 2\n");

    // A bad line: nothing imported, the line and field on stderr, a failing exit code.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"key\": \"OLD-new-licence-0001\", \"product\": \"client\", \"name\": \"C\", \"owner_email\": \"c@c.example\"}\n\
         {\"key\": \"OLD-new-licence-0002\", \"product\": \"desktop\", \"name\": \"D\", \"owner_email\": \"d@d.example\"}\n",
    )
    .unwrap();
    let refused = run(dir.path(), &vars, &["import", "licenses", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("line 2: product: `desktop` is not a product"), "{err}");
    assert!(out_text(&refused).is_empty());

    let app = TestApp::with_vars(&[("DATABASE_URL", &url)], Some(db)).await;
    let validate = |key: &str| {
        app.client
            .post(app.url("/api/v1/licenses/validate"))
            .json(&json!({"key": key, "entitlements": ["sso"]}))
            .send()
    };
    let v: Value = validate(OLD_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str()),
        (Some(true), Some("valid")),
        "{v}"
    );
    assert_eq!(v["license"]["name"], "Acme");
    assert_eq!(v["license"]["created_at"], "2020-02-02T12:00:00.000000Z");
    let v: Value = validate("OLD-suspended-000001").await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], "suspended");
    let v: Value = validate("OLD-never-issued-0000").await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], "not_found");
    let v: Value = validate("OLD-new-licence-0001").await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], "not_found", "the refused file imported nothing");

    let res = app
        .client
        .post(app.url("/api/v1/licenses/activate"))
        .json(&json!({"key": OLD_KEY, "fingerprint": "old-client"}))
        .go()
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}
