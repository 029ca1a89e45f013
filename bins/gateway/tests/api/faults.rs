//! Faults: the database stopped under the gateway and started again. A private MariaDB
//! (its own data folder and port) is killed while the gateway runs: requests answer 503
//! problems within the acquire timeout, `/readyz` fails, and within 5 s of the database
//! returning the same process serves again; every message it accepted is delivered.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{create_key, free_port, serve};
use crate::helpers::{Go, id_of};

struct Mariadb {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Mariadb {
    /// A fresh private server, or `None` (with a `SKIPPED:` line) where MariaDB is not
    /// installed outside CI.
    fn install() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let installed = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match installed {
            Ok(s) if s.success() => {}
            other => {
                assert!(
                    !shared_db::testing::in_ci(),
                    "mariadb-install-db is required under CI=true: {other:?}"
                );
                eprintln!("SKIPPED: database fault test: mariadb-install-db unavailable ({other:?})");
                return None;
            }
        }
        let mut db = Self {
            dir,
            port: free_port(),
            child: None,
        };
        db.start();
        Some(db)
    }

    fn start(&mut self) {
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
            ])
            .arg(format!("--datadir={}", self.dir.path().join("data").display()))
            .arg(format!("--socket={}", self.dir.path().join("sock").display()))
            .arg(format!("--port={}", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_going_away_and_back_needs_no_restart() {
    let Some(mut db) = Mariadb::install() else { return };
    let url = format!("mysql://root@127.0.0.1:{}/mysql", db.port);
    let create = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            "-uroot",
            &format!("-P{}", db.port),
            "-e",
            "CREATE DATABASE eb",
        ])
        .status()
        .unwrap();
    assert!(create.success());
    let url = url.replace("/mysql", "/eb");
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY", "fault-test-secret-key-0123456789"),
        ("BLOB_DIR", "blobs"),
        ("DB_CONNECT_TIMEOUT_SECS", "1"),
        ("DB_ACQUIRE_TIMEOUT_SECS", "2"),
        ("SES_SENDER_EMAIL", "app@example.com"),
        // MySQL has no dev stand-ins unless asked for.
        ("MAIL_TRANSPORT", "dev"),
        // Jobs claimed when the database vanished return to the queue after this.
        ("JOB_LEASE_SECS", "3"),
        ("LOG_LEVEL", "warn"),
    ];
    let key = create_key(dir.path(), &vars, "t", "emails:send,emails:read");
    let (mut gateway, port, _logs) = serve(dir.path(), &vars);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let send = |i: usize| {
        client
            .post(format!("{base}/api/v1/emails"))
            .bearer_auth(&key)
            .json(&json!({"to": format!("u{i}@example.org"), "subject": format!("m{i}"), "text": "x"}))
            .send()
    };
    let mut accepted = Vec::new();
    for i in 0..5 {
        let res = send(i).await.unwrap();
        assert_eq!(res.status(), 202);
        accepted.push(id_of(res).await);
    }

    db.kill();
    let started = Instant::now();
    let res = send(100).await.unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 503, "{:?}", res.text().await);
    assert!(took < Duration::from_secs(5), "503 after {took:?}");
    let ready = client.get(format!("{base}/readyz")).go().await;
    assert_eq!(ready.status(), 503);

    db.start();
    let back = Instant::now();
    loop {
        let res = send(200 + accepted.len()).await.unwrap();
        if res.status() == 202 {
            accepted.push(id_of(res).await);
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still {} 5 s after the database returned",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    assert_eq!(client.get(format!("{base}/readyz")).go().await.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &accepted {
        loop {
            let email: Value = client
                .get(format!("{base}/api/v1/emails/{id}"))
                .bearer_auth(&key)
                .go_json()
                .await;
            if email["status"] == "captured" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} not delivered: {email}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "database fault: 503 in {:.2} s while down; serving again {:.2} s after it returned; {} messages delivered",
        took.as_secs_f64(),
        recovered.as_secs_f64(),
        accepted.len()
    );
    gateway.kill().unwrap();
    gateway.wait().unwrap();
}
