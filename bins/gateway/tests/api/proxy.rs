//! Behind the shipped proxy: a real nginx (Debian's) running `deploy/nginx.conf`, with
//! clients on other loopback addresses (127.0.0.2, 127.0.0.3) than the proxy's own
//! (127.0.0.1, the only one in `TRUSTED_PROXIES`). Whatever a client says about its own
//! address in `Forwarded` or `X-Forwarded-For`, the gateway sees the address nginx saw.
//!
//! nginx is required under `CI=true` (.ci/run installs it); elsewhere the test is skipped
//! with a message when no `nginx` binary is found.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{Go, TestApp};

/// nginx serving `deploy/nginx.conf` in front of one gateway; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `deploy/nginx.conf` with only its listen address and upstream servers replaced (and
/// its temporary files kept in `dir`); everything it does to requests is as shipped.
fn render_shipped_config(gateway_port: u16, port: u16, dir: &std::path::Path) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/nginx.conf");
    let shipped = std::fs::read_to_string(path).unwrap();
    let mut servers = 0;
    let mut listens = 0;
    let mut out = String::new();
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server gateway-") {
            servers += 1;
            if servers == 1 {
                out.push_str(&format!("        server 127.0.0.1:{gateway_port};\n"));
            }
        } else if trimmed.starts_with("listen ") {
            listens += 1;
            out.push_str(&format!("        listen 127.0.0.1:{port};\n"));
        } else if trimmed.starts_with("http {") {
            out.push_str(line);
            out.push('\n');
            let d = dir.display();
            out.push_str(&format!(
                "    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
                 fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        servers >= 1 && listens == 1,
        "deploy/nginx.conf changed shape: update this test"
    );
    out
}

async fn start_nginx(gateway_port: u16) -> Option<Nginx> {
    let Some(binary) = nginx_binary() else {
        if shared_db::testing::in_ci() {
            panic!("nginx is required under CI=true (apt-get install nginx)");
        }
        eprintln!("SKIPPED: no nginx binary (apt-get install nginx) for the proxy tests");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, render_shipped_config(gateway_port, port, dir.path())).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg("stderr")
        .arg("-g")
        .arg(format!(
            "daemon off; master_process off; pid {}/nginx.pid;",
            dir.path().display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let nginx = Nginx { child, port, _dir: dir };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(nginx);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not listen on {port}");
}

/// A client whose connections come from `address`.
fn client_from(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .build()
        .unwrap()
}

/// Spoofed `Forwarded` and `X-Forwarded-For` headers naming `claimed`.
fn spoofing(req: reqwest::RequestBuilder, claimed: &str) -> reqwest::RequestBuilder {
    req.header("Forwarded", format!("for={claimed}"))
        .header("X-Forwarded-For", claimed)
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_behind_nginx_cannot_choose_their_address() {
    let app = TestApp::with_vars(
        &[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTH_FAILURES_PER_MINUTE", "5"),
            ("LICENSE_RATE_LIMIT_PER_MINUTE", "5"),
            ("LICENSE_KEY_RATE_LIMIT_PER_MINUTE", "1000"),
        ],
        None,
    )
    .await;
    let gateway_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let Some(nginx) = start_nginx(gateway_port).await else {
        return;
    };
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);
    let attacker = client_from(2);
    let victim = client_from(3);

    // The victim works through the proxy.
    let ok = victim
        .get(url("/api/v1/api-keys"))
        .bearer_auth(&app.admin_key)
        .go()
        .await;
    assert_eq!(ok.status(), 200);

    // Metrics are not served to the outside.
    let metrics = victim.get(url("/metrics")).go().await;
    assert_eq!(metrics.status(), 403);

    // Wrong keys with a new claimed address each time, half of them naming the victim:
    // the attacker is still one address, so it is stopped after its 5 failures, and the
    // victim is not blamed for them.
    let mut statuses = Vec::new();
    for i in 0..30 {
        let claimed = if i % 2 == 0 {
            format!("198.51.100.{i}")
        } else {
            "127.0.0.3".to_owned()
        };
        let res = spoofing(attacker.get(url("/api/v1/api-keys")), &claimed)
            .bearer_auth(format!("eb_wrong{i}"))
            .go()
            .await;
        statuses.push(res.status().as_u16());
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        unauthorized <= 7 && statuses.iter().rev().take(20).all(|s| *s == 429),
        "rotating Forwarded/X-Forwarded-For must not reset the attacker's bucket: {statuses:?}"
    );
    let victim_after = victim
        .get(url("/api/v1/api-keys"))
        .bearer_auth(&app.admin_key)
        .go()
        .await;
    assert_eq!(
        victim_after.status(),
        200,
        "the victim's address was locked out by another client"
    );

    // Licence validations: the per-address limit (5/min) holds whatever is claimed.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let key = license_core::key::LicenseKey::generate().unwrap();
        let res = spoofing(
            attacker.post(url("/api/v1/licenses/validate")),
            &format!("203.0.113.{i}"),
        )
        .json(&serde_json::json!({ "key": key.as_str() }))
        .go()
        .await;
        statuses.push(res.status().as_u16());
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=6).contains(&served) && statuses.last() == Some(&429),
        "the per-address limit was bypassed: {statuses:?}"
    );
    // The victim's own validations are not affected by the attacker's.
    let key = license_core::key::LicenseKey::generate().unwrap();
    let res = victim
        .post(url("/api/v1/licenses/validate"))
        .json(&serde_json::json!({ "key": key.as_str() }))
        .go()
        .await;
    assert_eq!(res.status(), 200);
}
