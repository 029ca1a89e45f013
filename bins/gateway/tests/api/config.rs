//! The configuration's tests: every section, and the README's table.
use std::collections::HashMap;

use secrecy::ExposeSecret;

use std::path::PathBuf;

use shared_db::Backend;

use gateway::config::*;

/// Every variable the configuration reads is in the README's configuration section.
#[test]
fn every_variable_read_is_documented_in_the_readme() {
    let code = [
        include_str!("../../../../crates/gateway-config/src/lib.rs"),
        include_str!("../../../../crates/gateway-config/src/server.rs"),
        include_str!("../../../../crates/gateway-config/src/database.rs"),
        include_str!("../../../../crates/gateway-config/src/secrets.rs"),
        include_str!("../../../../crates/gateway-config/src/aws.rs"),
        include_str!("../../../../crates/gateway-config/src/storage.rs"),
        include_str!("../../../../crates/gateway-config/src/mail.rs"),
        include_str!("../../../../crates/gateway-config/src/slack.rs"),
        include_str!("../../../../crates/gateway-config/src/licenses.rs"),
        include_str!("../../../../crates/gateway-config/src/bridge.rs"),
        include_str!("../../../../crates/gateway-config/src/retention.rs"),
    ]
    .concat();
    let readme = include_str!("../../../../README.md");
    let start = readme.find("## Configuration").unwrap();
    let end = readme[start..].find("## API overview").unwrap() + start;
    let documented = &readme[start..end];
    let mut read: Vec<&str> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 3
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect();
    read.sort_unstable();
    read.dedup();
    assert!(read.len() > 50, "the scan finds the variables: {read:?}");
    let missing: Vec<&&str> = read
        .iter()
        .filter(|v| !documented.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "read but not in the README's configuration section: {missing:?}"
    );
}

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn nothing_configured_means_sqlite_in_data_with_a_generated_secret() {
    let c = config(&[]).unwrap();
    assert_eq!(c.server.port, 8002);
    assert_eq!(c.server.app_url, None);
    assert!(c.database.is_default);
    assert_eq!(c.database.url.backend(), Backend::Sqlite);
    assert_eq!(c.database.url.expose_target(), "./data/event-bridge.db");
    assert!(matches!(c.secrets.source, SecretSource::GeneratedFile(ref p) if p.ends_with("secret_key")));
    assert!(c.database.migrate_on_start);
    assert_eq!(c.server.log_format, LogFormat::Text);
}

#[test]
fn blank_values_from_the_original_env_count_as_unset() {
    let c = config(&[("APP_PORT", ""), ("DB_HOST", " "), ("SECRET_KEY", "")]).unwrap();
    assert_eq!(c.server.port, 8002);
    assert!(c.database.is_default);
}

#[test]
fn mysql_from_the_original_variables() {
    let c = config(&[
        ("DB_HOST", "db.internal"),
        ("DB_PORT", "3307"),
        ("DB_NAME", "event_bridge"),
        ("DB_USER_ID", "bridge"),
        ("DB_PASS", "pa:ss"),
        ("DB_IS_SSL", "true"),
        ("SECRET_KEY", "0123456789abcdef0123456789abcdef"),
        ("BLOB_DIR", "/srv/shared/blobs"),
    ])
    .unwrap();
    assert_eq!(
        c.database.url.expose_target(),
        "mysql://bridge:pa%3Ass@db.internal:3307/event_bridge"
    );
    assert_eq!(
        c.database.url.tls().map(shared_db::MysqlTls::mode),
        Some(shared_db::SslMode::VerifyIdentity)
    );
    assert!(
        !format!("{c:?}").contains("pa%3Ass"),
        "Debug must not show the password"
    );
    assert!(
        !format!("{c:?}").contains("0123456789abcdef"),
        "Debug must not show the secret"
    );
    match c.secrets.source {
        SecretSource::Configured(s) => assert_eq!(s.expose_secret().len(), 32),
        SecretSource::GeneratedFile(_) => panic!("configured secret expected"),
    }
}

#[test]
fn database_url_wins_and_accepts_the_aiomysql_form() {
    let c = config(&[
        ("DATABASE_URL", "mysql+aiomysql://root:@127.0.0.1:3306/test"),
        ("DB_HOST", "ignored"),
        ("SECRET_KEY", "0123456789abcdef"),
        ("BLOB_DIR", "/srv/shared/blobs"),
    ])
    .unwrap();
    assert_eq!(c.database.url.backend(), Backend::Mysql);
    assert_eq!(c.database.url.expose_target(), "mysql://root@127.0.0.1:3306/test");
    assert!(c.database.url.tls().is_none());
}

#[test]
fn the_original_unused_variables_are_recognised() {
    let c = config(&[("SLACK_CLIENT_ID", "1234.5678"), ("ALGORITHM", "pbkdf2_sha256")]).unwrap();
    let names: Vec<&str> = c.unused_variables.iter().map(|(v, _)| *v).collect();
    assert_eq!(names, ["SLACK_CLIENT_ID", "ALGORITHM"]);
    assert!(config(&[]).unwrap().unused_variables.is_empty());
}

#[test]
fn storage_on_mysql_is_shared_or_refused() {
    let mysql = [
        ("DATABASE_URL", "mysql://app:pw@db/eb"),
        ("SECRET_KEY", "0123456789abcdef"),
    ];
    let err = config(&mysql).unwrap_err();
    assert_eq!(err.var, "S3_BUCKET");
    assert!(err.to_string().contains("BLOB_DIR"), "{err}");
    let with = |extra: (&'static str, &'static str)| {
        let mut vars = mysql.to_vec();
        vars.push(extra);
        config(&vars)
    };
    assert_eq!(
        with(("BLOB_DIR", "/mnt/efs/blobs")).unwrap().storage.blob_dir,
        PathBuf::from("/mnt/efs/blobs")
    );
    assert!(with(("S3_BUCKET", "shared")).unwrap().storage.s3.is_some());
    // The embedded default keeps its own folder.
    assert_eq!(config(&[]).unwrap().storage.blob_dir, PathBuf::from("./data/blobs"));
}

#[test]
fn db_is_ssl_applies_to_the_original_database_url() {
    // The original .env (DATABASE_URL in the SQLAlchemy form, DB_IS_SSL beside it), and
    // a URL whose weaker mode DB_IS_SSL does not lower: both verify fully.
    for url in [
        "mysql+aiomysql://app:pw@db.example.com:3306/eb",
        "mysql://app:pw@10.0.0.5:3306/eb?ssl-mode=REQUIRED",
    ] {
        let c = config(&[
            ("DATABASE_URL", url),
            ("DB_IS_SSL", "true"),
            ("SECRET_KEY", "0123456789abcdef"),
            ("BLOB_DIR", "/srv/shared/blobs"),
        ])
        .unwrap();
        assert_eq!(
            c.database.url.tls().map(shared_db::MysqlTls::mode),
            Some(shared_db::SslMode::VerifyIdentity),
            "{url}"
        );
    }
    // A CA file that cannot be read names DB_SSL_CA; TLS on SQLite names DB_IS_SSL.
    let err = config(&[
        ("DATABASE_URL", "mysql://app:pw@db/eb"),
        ("DB_SSL_CA", "/no/such/rds-bundle.pem"),
        ("SECRET_KEY", "0123456789abcdef"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "DB_SSL_CA");
    assert!(err.to_string().contains("/no/such/rds-bundle.pem"), "{err}");
    assert_eq!(config(&[("DB_IS_SSL", "true")]).unwrap_err().var, "DB_IS_SSL");
}

#[test]
fn errors_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("APP_PORT", "eighty")], "APP_PORT"),
        (&[("APP_PORT", "70000")], "APP_PORT"),
        (&[("APP_HOST", "localhost:1")], "APP_HOST"),
        (&[("APP_URL", "not a url")], "APP_URL"),
        (&[("DATABASE_URL", "postgres://x/y")], "DATABASE_URL"),
        (&[("DATABASE_URL", "mysql://root@127.0.0.1/test")], "SECRET_KEY"),
        (&[("DB_HOST", "h"), ("DB_USER_ID", "u")], "DB_NAME"),
        (&[("DB_HOST", "h"), ("DB_NAME", "n")], "DB_USER_ID"),
        (
            &[
                ("DB_HOST", "h"),
                ("DB_NAME", "n"),
                ("DB_USER_ID", "u"),
                ("DB_IS_SSL", "maybe"),
            ],
            "DB_IS_SSL",
        ),
        (&[("SECRET_KEY", "short")], "SECRET_KEY"),
        (&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
        (&[("LOG_LEVEL", "info,[bad")], "LOG_LEVEL"),
        (&[("DB_POOL_SIZE", "0")], "DB_POOL_SIZE"),
        (&[("DB_ACQUIRE_TIMEOUT_SECS", "-1")], "DB_ACQUIRE_TIMEOUT_SECS"),
        (&[("DB_MIGRATE_ON_START", "sometimes")], "DB_MIGRATE_ON_START"),
        (
            &[("CORS_ALLOWED_ORIGINS", "https://app.example.com/")],
            "CORS_ALLOWED_ORIGINS",
        ),
        (&[("CORS_ALLOWED_ORIGINS", "*.example.com")], "CORS_ALLOWED_ORIGINS"),
    ];
    for (vars, var) in cases {
        let err = config(vars).unwrap_err();
        assert_eq!(err.var, *var, "{vars:?}");
        assert!(err.to_string().contains(var));
    }
}

#[test]
fn s3_settings_and_their_secret_stay_out_of_debug() {
    let c = config(&[
        ("S3_BUCKET", "shared"),
        ("AWS_SES_REGION", "ap-northeast-2"),
        ("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN"),
        ("SES_SENDER_EMAIL", "noreply@example.com"),
    ])
    .unwrap();
    assert!(c.mail.ses.is_some());
    assert_eq!(c.aws.source(), Some("environment (AWS_ACCESS_KEY_ID)"));
    let s3 = c.storage.s3.clone().unwrap();
    assert_eq!(
        (s3.bucket.as_str(), s3.region.as_str(), s3.force_path_style),
        ("shared", "ap-northeast-2", true)
    );
    assert_eq!(s3.part_size, 8 * 1024 * 1024);
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("wJalrXUtnFEMI") && !debug.contains("AKIAEXAMPLE") && !debug.contains("EXAMPLETOKEN"),
        "{debug}"
    );
    // S3's own keys for an S3-compatible store, while SES keeps AWS's chain.
    let c = config(&[
        ("S3_BUCKET", "shared"),
        ("S3_ACCESS_KEY_ID", "minio-user"),
        ("S3_SECRET_ACCESS_KEY", "minio-secret-123"),
    ])
    .unwrap();
    assert_eq!(
        c.storage.s3_credentials.as_ref().and_then(|a| a.source()),
        Some("S3_ACCESS_KEY_ID")
    );
    assert_eq!(c.aws.source(), None, "the chain is asked only when used");
    assert!(!format!("{c:?}").contains("minio-secret-123"));
    let err = config(&[("S3_BUCKET", "shared"), ("S3_ACCESS_KEY_ID", "minio-user")]).unwrap_err();
    assert_eq!(err.var, "S3_SECRET_ACCESS_KEY");
}

#[test]
fn a_signing_key_is_read_from_pem_or_base64() {
    // An OpenSSL-style PKCS#8 v1 Ed25519 key (RFC 8410 test vector).
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let c = config(&[("LICENSE_SIGNING_KEY", pem)]).unwrap();
    let der = c.licenses.signing_key.unwrap();
    assert_eq!(der.expose_secret().len(), 48);
    let one_line = "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\\n-----END PRIVATE KEY-----";
    assert!(
        config(&[("LICENSE_SIGNING_KEY", one_line)])
            .unwrap()
            .licenses
            .signing_key
            .is_some()
    );
    let bare = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";
    assert!(
        config(&[("LICENSE_SIGNING_KEY", bare)])
            .unwrap()
            .licenses
            .signing_key
            .is_some()
    );
    assert!(!format!("{:?}", config(&[("LICENSE_SIGNING_KEY", bare)]).unwrap()).contains("MC4CAQ"));
}

#[test]
fn transports_default_to_dev_on_sqlite_and_to_not_configured_on_mysql() {
    use mailer::transport::MailMode;
    use slack_notify::transport::SlackMode;
    let mysql = [
        ("DATABASE_URL", "mysql://root@127.0.0.1:3306/test"),
        ("SECRET_KEY", "0123456789abcdef"),
        ("BLOB_DIR", "/srv/shared/blobs"),
    ];
    let with = |extra: &[(&'static str, &'static str)], on_mysql: bool| {
        let mut vars: Vec<(&str, &str)> = extra.to_vec();
        if on_mysql {
            vars.extend(mysql);
        }
        config(&vars)
    };
    let modes = |c: &Config| (c.mail.transport, c.slack.transport);

    let c = with(&[], false).unwrap();
    assert_eq!(
        modes(&c),
        (MailMode::Dev, SlackMode::Dev),
        "zero configuration keeps working"
    );
    let c = with(&[], true).unwrap();
    assert_eq!(modes(&c), (MailMode::NotConfigured, SlackMode::NotConfigured));
    let c = with(&[("MAIL_TRANSPORT", "dev"), ("SLACK_TRANSPORT", "dev")], true).unwrap();
    assert_eq!(modes(&c), (MailMode::Dev, SlackMode::Dev));
    // A sender alone is not SES: still not configured on MySQL.
    let c = with(&[("SES_SENDER_EMAIL", "app@example.com")], true).unwrap();
    assert_eq!(c.mail.transport, MailMode::NotConfigured);
    let ses = [
        ("SES_SENDER_EMAIL", "app@example.com"),
        ("AWS_SES_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("SLACK_BOT_TOKEN", "xoxb-1"),
    ];
    for on_mysql in [false, true] {
        let c = with(&ses, on_mysql).unwrap();
        assert_eq!(modes(&c), (MailMode::Ses, SlackMode::Slack));
        assert!(c.slack.bot_token.is_some());
    }
    // The token is not used by the dev sink.
    let c = with(&[("SLACK_BOT_TOKEN", "xoxb-1"), ("SLACK_TRANSPORT", "dev")], true).unwrap();
    assert_eq!(c.slack.transport, SlackMode::Dev);
    assert!(c.slack.bot_token.is_none());

    let err = with(&[("SLACK_TRANSPORT", "slack")], false).unwrap_err();
    assert_eq!(err.var, "SLACK_BOT_TOKEN", "{err}");
    assert!(err.to_string().contains("SLACK_TRANSPORT"), "{err}");
    let err = with(&[("SLACK_TRANSPORT", "teams")], true).unwrap_err();
    assert_eq!(err.var, "SLACK_TRANSPORT");
    let err = with(&[("MAIL_TRANSPORT", "smtp")], true).unwrap_err();
    assert_eq!(err.var, "MAIL_TRANSPORT");
}

/// Every variable the module's table documents (the first cell's backticked names).
fn documented_variables() -> Vec<&'static str> {
    include_str!("../../../../crates/gateway-config/src/lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[test]
fn the_documented_variables_are_found() {
    let vars = documented_variables();
    assert!(vars.len() > 40, "{vars:?}");
    for v in [
        "APP_PORT",
        "DATABASE_URL",
        "S3_TIMEOUT_SECS",
        "MAX_CONNECTIONS",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(vars.contains(&v), "{v} in {vars:?}");
    }
}

proptest::proptest! {
    /// Any value of any documented variable (up to three at once) is taken or refused
    /// with an error naming a documented variable, never a panic.
    #[test]
    fn any_value_of_any_variable_is_taken_or_refused_by_name(
        picks in proptest::collection::vec((0usize..1000, "\\PC{0,40}|[0-9]{1,25}|-[0-9]{1,5}|(true|false|yes|no|on|off|1|0)"), 1..4)
    ) {
        let names = documented_variables();
        let vars: Vec<(&str, &str)> = picks.iter().map(|(i, v)| (names[i % names.len()], v.as_str())).collect();
        if let Err(e) = config(&vars) {
            proptest::prop_assert!(names.contains(&e.var), "{} is not documented", e.var);
            proptest::prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn any_port_value_is_parsed_or_refused_never_panics(v in "\\PC{0,12}") {
        match config(&[("APP_PORT", &v)]) {
            Ok(c) => proptest::prop_assert_eq!(Some(c.server.port), v.trim().parse::<u16>().ok().or(v.trim().is_empty().then_some(8002))),
            Err(e) => proptest::prop_assert_eq!(e.var, "APP_PORT"),
        }
    }
}
