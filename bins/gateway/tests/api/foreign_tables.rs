//! The gateway beside tables it did not create (the original service's database): its own
//! tables all carry the `eb_` prefix, so it starts, serves and reverts its migrations
//! without reading, altering or dropping `licenses`, `jobs`, `api_keys`, ...

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use shared_db::testing::TestDb;
use shared_db::{Backend, DbConn, migrations, with_conn};

use crate::helpers::{TestApp, send_json};
use reqwest::Method;

/// The original service's kind of tables, under the names ours had before the prefix
/// and a few more, each with a row.
const FOREIGN: &[&str] = &[
    "licenses",
    "license",
    "emails",
    "events",
    "jobs",
    "api_keys",
    "documents",
    "webhooks",
    "rules",
    "machines",
];

#[derive(QueryableByName)]
struct Ddl {
    #[diesel(sql_type = Text)]
    ddl: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Each foreign table's definition and rows, as text.
async fn snapshot(conn: &mut DbConn) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for t in FOREIGN {
        let ddl_query = match conn.backend() {
            Backend::Sqlite => format!("SELECT sql AS ddl FROM sqlite_master WHERE type = 'table' AND name = '{t}'"),
            Backend::Mysql => format!(
                "SELECT GROUP_CONCAT(CONCAT(column_name, ' ', column_type) ORDER BY ordinal_position) AS ddl \
                 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{t}'"
            ),
        };
        let ddl: Vec<Ddl> = with_conn!(&mut *conn, |c| diesel::sql_query(&ddl_query).load(c).await).unwrap();
        let rows: Vec<Ddl> = with_conn!(&mut *conn, |c| diesel::sql_query(format!(
            "SELECT CONCAT(legacy_key, '|', note) AS ddl FROM {t} ORDER BY legacy_key"
        ))
        .load(c)
        .await)
        .unwrap_or_else(|_| Vec::new());
        out.push((
            (*t).to_owned(),
            ddl.into_iter().map(|d| d.ddl).collect::<Vec<_>>().join(";"),
            rows.into_iter().map(|r| r.ddl).collect(),
        ));
    }
    out
}

async fn create_foreign(conn: &mut DbConn) {
    for t in FOREIGN {
        let sql = format!(
            "CREATE TABLE {t} (legacy_key VARCHAR(64) NOT NULL PRIMARY KEY, note VARCHAR(64) NOT NULL); \
             INSERT INTO {t} (legacy_key, note) VALUES ('OLD-{t}', 'kept as it was')"
        );
        with_conn!(&mut *conn, |c| c.batch_execute(&sql).await).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_lives_beside_foreign_tables_on_both_backends() {
    let mut dbs = vec![TestDb::sqlite_unmigrated().await];
    dbs.extend(TestDb::mysql_unmigrated().await);
    for db in dbs {
        let backend = db.backend();
        let mut conn = db.pool.get().await.unwrap();
        create_foreign(&mut conn).await;
        let before = snapshot(&mut conn).await;
        assert!(
            before.iter().all(|(_, ddl, rows)| !ddl.is_empty() && rows.len() == 1),
            "{before:?}"
        );
        drop(conn);

        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", db.url.expose_target()),
            Backend::Mysql => db.url.expose_target().to_owned(),
        };
        let db_url = db.url.clone();
        let app = TestApp::with_vars(
            &[
                ("DATABASE_URL", &url),
                ("MAIL_TRANSPORT", "dev"),
                ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ],
            Some(db),
        )
        .await;
        // Every domain writes: a licence and a machine, an email, a document, a webhook, a key.
        let send = async |path: &str, body: Value| {
            let res = send_json(&app, Method::POST, path, &body).await;
            assert!(res.status().is_success(), "{path}: {} {backend}", res.status());
            res.json::<Value>().await.unwrap()
        };
        let lic = send(
            "/api/v1/licenses",
            json!({"product": "client", "name": "n", "owner_email": "o@example.com"}),
        )
        .await;
        let key = lic["key"].as_str().unwrap();
        send("/api/v1/licenses/activate", json!({"key": key, "fingerprint": "fp"})).await;
        send(
            "/api/v1/emails",
            json!({"to": "a@example.org", "subject": "s", "text": "t"}),
        )
        .await;
        let res = send_json(&app, Method::PUT, "/api/v1/data/notes/n1", &json!({"a": 1})).await;
        assert_eq!(res.status(), 201);
        send(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/in", "event_types": ["license.*"]}),
        )
        .await;
        app.create_key(&["events:read"]).await;
        let events = app.get_json("/api/v1/events").await;
        assert!(events["items"].as_array().unwrap().len() >= 3, "{events}");

        let mut conn = app.state.pool.get().await.unwrap();
        assert_eq!(
            snapshot(&mut conn).await,
            before,
            "{backend}: the foreign tables changed"
        );
        let ours: Count = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM eb_licenses"
        )
        .get_result(c)
        .await)
        .unwrap();
        assert_eq!(ours.n, 1);
        drop(conn);

        // Reverting every migration drops only our tables.
        migrations::revert_all(&db_url).await.unwrap();
        let mut conn = app.state.pool.get().await.unwrap();
        assert_eq!(
            snapshot(&mut conn).await,
            before,
            "{backend}: reverting touched the foreign tables"
        );
    }
}
