//! A MariaDB server of a test's own that requires TLS (`require_secure_transport=ON`),
//! with a certificate from a CA made for it: what managed MySQL services (RDS, Aurora,
//! Azure, PlanetScale) look like to a client.
//!
//! [`TlsMariaDb::start`] runs `mariadb-install-db` into a temporary folder and starts
//! `mariadbd` on a free port of 127.0.0.1. The server certificate names `localhost`
//! only, so `127.0.0.1` is a host name it does not match (for `VERIFY_IDENTITY` tests).
//! A watchdog shell stops the server when the test process ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::in_ci;

/// The user the tests connect as, and its password.
pub const USER: &str = "eb_tls";
/// The password of [`USER`].
pub const PASSWORD: &str = "tls-test-pass";
/// The database created for the tests.
pub const DATABASE: &str = "event_bridge";

/// A running TLS-only MariaDB.
pub struct TlsMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    watchdog: Child,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A CA and a server certificate for `localhost`, as PEM files in `dir`.
fn write_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Event Bridge test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), server_cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server-key.pem"), server_key.serialize_pem()).expect("write server-key.pem");
    // A CA that signed nothing here: a server certificate must not verify against it.
    let other_key = KeyPair::generate().expect("other key");
    let mut other = CertificateParams::new(Vec::<String>::new()).expect("other params");
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    other.distinguished_name.push(DnType::CommonName, "Some other CA");
    let other_cert = other.self_signed(&other_key).expect("other CA");
    std::fs::write(dir.join("other-ca.pem"), other_cert.pem()).expect("write other-ca.pem");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsMariaDb {
    /// Starts the server, or `None` (with a visible message) when MariaDB's programs are
    /// not installed, except under `CI=true`, where that fails the test.
    pub fn start() -> Option<TlsMariaDb> {
        let programs = (
            find(&["mariadb-install-db", "mysql_install_db"]),
            find(&["mariadbd", "mysqld"]),
            find(&["mariadb", "mysql"]),
        );
        let (Some(install), Some(server), Some(client)) = programs else {
            if in_ci() {
                panic!("CI=true needs MariaDB's programs (mariadb-install-db, mariadbd, mariadb) for the TLS tests");
            }
            eprintln!("SKIPPED: TLS MariaDB test: mariadb-install-db / mariadbd / mariadb not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        write_certificates(d);
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let datadir = d.join("data");
        run(
            Command::new(&install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", datadir.display()))
                .arg(format!("--user={user}"))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db"),
            "mariadb-install-db",
        );
        let port = free_port();
        let socket = d.join("mysqld.sock");
        let args = [
            "--no-defaults".to_owned(),
            format!("--datadir={}", datadir.display()),
            format!("--socket={}", socket.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--skip-name-resolve".to_owned(),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            format!("--log-error={}", d.join("error.log").display()),
            format!("--user={user}"),
            format!("--ssl-ca={}", d.join("ca.pem").display()),
            format!("--ssl-cert={}", d.join("server.pem").display()),
            format!("--ssl-key={}", d.join("server-key.pem").display()),
            "--require-secure-transport=ON".to_owned(),
            "--innodb-buffer-pool-size=16M".to_owned(),
            "--skip-log-bin".to_owned(),
        ];
        // The shell starts the server, then stops it once the test process is gone.
        let script = format!(
            "\"$0\" \"$@\" >/dev/null 2>&1 & m=$!; trap 'kill $m; wait $m; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null; wait $m",
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&server)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let this = TlsMariaDb { dir, port, watchdog };
        let deadline = Instant::now() + Duration::from_secs(60);
        let setup = format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%'; \
             CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
        );
        loop {
            let out = Command::new(&client)
                .arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()))
                .args(["-uroot", "-e", &setup])
                .output()
                .expect("run the mariadb client");
            if out.status.success() {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(this.dir.path().join("error.log")).unwrap_or_default();
                panic!(
                    "the TLS MariaDB did not start: {}\n{log}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(this)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM file of a CA that did not sign it.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// `mysql://USER:PASSWORD@host:port/event_bridge`, plus `query` when not empty.
    pub fn url(&self, host: &str, query: &str) -> String {
        let mut url = format!("mysql://{USER}:{PASSWORD}@{host}:{}/{DATABASE}", self.port);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.watchdog.id().to_string()])
            .status();
        let _ = self.watchdog.wait();
    }
}
