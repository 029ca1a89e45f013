//! `gateway backup FILE`: an online copy of the SQLite database, taken while the gateway
//! writes, restores and validates its licences; MySQL is refused with the right tools named.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use shared_db::testing::TestDb;

use crate::cli::run;
use crate::helpers::{Go, SECRET, TestApp, send_json};
use reqwest::Method;

async fn issue(app: &TestApp, n: usize) -> String {
    let res = send_json(
        app,
        Method::POST,
        "/api/v1/licenses",
        &json!({"product": "client", "name": format!("backup {n}"), "owner_email": "ops@example.com"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_concurrent_writes_restores_and_validates_its_licences() {
    let db = TestDb::sqlite().await;
    let file = db.url.sqlite_file().unwrap().to_owned();
    let app = TestApp::with_vars(&[("DATABASE_URL", &format!("sqlite://{file}"))], Some(db)).await;

    let mut before = Vec::new();
    for n in 0..20 {
        before.push(issue(&app, n).await);
    }

    // Writers keep issuing licences while the backup runs.
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (app, stop, written) = (app.clone(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut n = 1000 * (w + 1);
                while !stop.load(Ordering::Relaxed) {
                    issue(&app, n).await;
                    written.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    while written.load(Ordering::Relaxed) < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    let vars = [
        ("DATABASE_URL", format!("sqlite://{file}")),
        ("SECRET_KEY", SECRET.to_owned()),
    ];
    let dest_arg = dest.to_str().unwrap().to_owned();
    let backup = {
        let (folder, vars, dest_arg) = (dir.path().to_owned(), vars.clone(), dest_arg.clone());
        move || {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run(&folder, &vars, &["backup", &dest_arg])
        }
    };
    let out = tokio::task::spawn_blocking(backup.clone()).await.unwrap();
    let during = written.load(Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("backed up sqlite://") && stdout.contains("tables"),
        "{stdout}"
    );
    assert!(
        written.load(Ordering::Relaxed) > during,
        "writes went on after the backup"
    );
    // One whole file: no WAL or partial files left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["copy.db"]);

    // A backup never overwrites.
    let again = backup();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Restored: a gateway on the copy, with the same SECRET_KEY, validates the licences
    // issued before the backup, and holds a consistent number of them.
    let restored = TestApp::with_vars(&[("DATABASE_URL", &format!("sqlite://{}", dest.display()))], None).await;
    for key in &before {
        let v: Value = restored
            .client
            .post(restored.url("/api/v1/licenses/validate"))
            .json(&json!({"key": key}))
            .go_json()
            .await;
        assert_eq!(
            (v["valid"].as_bool(), v["code"].as_str()),
            (Some(true), Some("valid")),
            "{v}"
        );
    }
    let (mut n, mut path) = (0, "/api/v1/licenses".to_owned());
    loop {
        let page = restored.get_json(&path).await;
        n += page["items"].as_array().expect("a page of licences").len();
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/licenses?cursor={c}"),
            None => break,
        }
    }
    assert!(n >= before.len() + 10, "the copy holds {n} licences");
    assert!(n <= before.len() + written.load(Ordering::Relaxed));
}

#[test]
fn backup_refuses_mysql_naming_its_tools_and_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            ("DATABASE_URL", "mysql://root@127.0.0.1:1/none"),
            ("BLOB_DIR", "blobs"),
            ("SECRET_KEY", SECRET),
        ],
        &["backup", "x.db"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("mariadb-dump") && err.contains("mariadb-backup"), "{err}");
    assert!(!dir.path().join("x.db").exists());

    let out = run(
        dir.path(),
        &[("DATABASE_URL", "sqlite://nothing-here.db"), ("SECRET_KEY", SECRET)],
        &["backup", "x.db"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("there is no database at"), "{err}");
}
