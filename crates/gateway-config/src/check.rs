//! `gateway check`: tries every configured service for real and prints one line each:
//! what was tried, `ok` or the problem, and the fix. Exits 0 only when every configured
//! service works. Nothing is left behind (the S3 probe object is deleted).

use std::fmt::Write as _;
use std::time::Duration;

use secrecy::ExposeSecret;
use shared_db::{Backend, DbConn, migrations};

use crate::Config;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the probe objects go, outside every namespace's keys.
pub const PROBE_PREFIX: &str = "_event-bridge-check/";

/// One service's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It works.
    Ok,
    /// It works, but something deserves a look.
    Warn,
    /// It does not work.
    Fail,
    /// Not configured: nothing to try.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// `database`, `aws`, `ses`, `slack`, `s3`, `storage`.
    pub service: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What was tried and what came back.
    pub detail: String,
    /// What to do about a failure or a warning.
    pub fix: Option<String>,
}

impl Line {
    fn ok(service: &'static str, detail: impl Into<String>) -> Self {
        Self {
            service,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(service: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            service,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn render(&self) -> String {
        let word = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        let mut out = format!("{:<9}{:<6}{}", self.service, word, self.detail);
        if let Some(fix) = &self.fix {
            let _ = write!(out, "\n{:15}fix: {fix}", "");
        }
        out
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(PROBE_TIMEOUT, f)
        .await
        .map_err(|_| format!("{what} did not answer within {} s", PROBE_TIMEOUT.as_secs()))
}

async fn database(config: &Config) -> Line {
    let url = &config.database.url;
    let mut conn = match within("the database", DbConn::connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let fix = if url.tls().is_some() || e.to_string().contains("TLS") {
                "check DB_SSL_CA (the CA bundle that signed the server's certificate) and ssl-mode; see README, Production on AWS"
            } else {
                "check DATABASE_URL (or DB_HOST, DB_PORT, DB_USER_ID, DB_PASS, DB_NAME) and that the server accepts this host"
            };
            return Line::fail("database", format!("connecting to {url}: {e}"), fix);
        }
        Err(e) => {
            return Line::fail(
                "database",
                format!("connecting to {url}: {e}"),
                "check the network path to the database",
            );
        }
    };
    let tls = match within("the database", conn.tls_cipher())
        .await
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(Some(cipher)) => format!(
            ", over TLS ({cipher}, {:?})",
            url.tls()
                .map(shared_db::MysqlTls::mode)
                .unwrap_or(shared_db::SslMode::Required)
        ),
        Ok(None) if url.backend() == Backend::Mysql => ", in plain text".to_owned(),
        Ok(None) => String::new(),
        Err(e) => format!(", TLS unknown ({e})"),
    };
    drop(conn);
    // Reading what is pending takes the migration lock: a replica migrating now holds it.
    match within("the migration lock", migrations::pending(url))
        .await
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(pending) if pending.is_empty() => {
            Line::ok("database", format!("{url}: connected{tls}; no migration pending"))
        }
        Ok(pending) => Line {
            service: "database",
            verdict: if config.database.migrate_on_start {
                Verdict::Warn
            } else {
                Verdict::Fail
            },
            detail: format!(
                "{url}: connected{tls}; {} migration(s) pending ({})",
                pending.len(),
                pending.join(", ")
            ),
            fix: Some(if config.database.migrate_on_start {
                "they are applied at the next start (DB_MIGRATE_ON_START=true), or now with `gateway migrate`".into()
            } else {
                "run `gateway migrate` (DB_MIGRATE_ON_START is false)".into()
            }),
        },
        Err(e) => Line::fail(
            "database",
            format!("{url}: connected{tls}; reading migrations: {e}"),
            "check the user's rights on the database",
        ),
    }
}

/// Resolves each set of AWS credentials in use: SES's (the AWS chain) and S3's (the
/// same, or S3's own keys), and says where they came from.
async fn aws(config: &Config) -> Vec<Line> {
    let mut uses: Vec<(&'static str, &crate::aws_client::AwsCredentials)> = Vec::new();
    if config.mail.ses.is_some() {
        uses.push(("SES", &config.aws));
    }
    if let Some(s3) = &config.storage.s3_credentials {
        match uses.first() {
            Some((_, ses)) if ses.same_as(s3) => uses[0].0 = "SES and S3",
            _ => uses.push(("S3", s3)),
        }
    }
    let mut lines = Vec::new();
    for (what, credentials) in uses {
        lines.push(match within("the AWS credential chain", credentials.resolve()).await {
            Ok(Ok((source, expiry))) => {
                let expiry = expiry
                    .map(|t| {
                        let t: chrono::DateTime<chrono::Utc> = t.into();
                        format!(", temporary until {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    })
                    .unwrap_or_default();
                Line::ok("aws", format!("credentials for {what} from {source}{expiry}"))
            }
            Ok(Err(e)) | Err(e) => Line::fail(
                "aws",
                format!("no AWS credentials for {what}: {e}"),
                "give the task or pod a role (ECS task role, EKS IRSA, EC2 instance profile), set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
        });
    }
    lines
}

async fn ses(config: &Config) -> Option<Line> {
    let ses = config.mail.ses.as_ref()?;
    let mailer = mailer::transport::SesMailer::new(ses);
    let quota = match within("SES", mailer.client().get_send_quota().send()).await {
        Ok(Ok(q)) => q,
        Ok(Err(e)) => {
            return Some(Line::fail(
                "ses",
                format!(
                    "GetSendQuota in {}: {}",
                    ses.region,
                    aws_sdk_ses::error::DisplayErrorContext(&e)
                ),
                "allow ses:GetSendQuota and ses:SendRawEmail to the gateway's role, and check AWS_SES_REGION",
            ));
        }
        Err(e) => return Some(Line::fail("ses", e, "check AWS_SES_REGION and the network path to SES")),
    };
    let detail = format!(
        "GetSendQuota in {}: {}/s, {} of {} sent in 24 h",
        ses.region, quota.max_send_rate, quota.sent_last24_hours, quota.max24_hour_send
    );
    let Some(sender) = &config.mail.settings.default_from else {
        return Some(Line {
            service: "ses",
            verdict: Verdict::Warn,
            detail: format!("{detail}; no default sender"),
            fix: Some("set SES_SENDER_EMAIL, or name `from` in every request".into()),
        });
    };
    let address = mailer::address::Mailbox::parse(sender)
        .map(|m| m.email().to_owned())
        .unwrap_or_else(|_| sender.clone());
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let asked = mailer
        .client()
        .get_identity_verification_attributes()
        .identities(&address)
        .identities(&domain)
        .send();
    let verified = match within("SES", asked).await {
        Ok(Ok(r)) => r
            .verification_attributes()
            .iter()
            .filter(|(_, a)| a.verification_status() == &aws_sdk_ses::types::VerificationStatus::Success)
            .map(|(identity, _)| identity.clone())
            .collect::<Vec<_>>(),
        Ok(Err(e)) => {
            return Some(Line::fail(
                "ses",
                format!(
                    "{detail}; GetIdentityVerificationAttributes: {}",
                    aws_sdk_ses::error::DisplayErrorContext(&e)
                ),
                "allow ses:GetIdentityVerificationAttributes to the gateway's role",
            ));
        }
        Err(e) => return Some(Line::fail("ses", e, "check the network path to SES")),
    };
    Some(if verified.is_empty() {
        Line::fail(
            "ses",
            format!("{detail}; the sender {address} is not verified (nor {domain})"),
            format!(
                "verify {address} or the domain {domain} in SES ({}), or change SES_SENDER_EMAIL",
                ses.region
            ),
        )
    } else {
        Line::ok(
            "ses",
            format!("{detail}; sender {address} verified ({})", verified.join(", ")),
        )
    })
}

async fn slack(config: &Config) -> Option<Line> {
    let token = config.slack.bot_token.as_ref()?;
    let api = match slack_notify::transport::SlackApi::new(token.expose_secret(), &config.slack.api_url) {
        Ok(api) => api.with_timeout(PROBE_TIMEOUT),
        Err(e) => return Some(Line::fail("slack", e.to_string(), "check SLACK_API_URL")),
    };
    let who = match api.auth_test().await {
        Ok(who) => who,
        Err(e) => {
            return Some(Line::fail(
                "slack",
                format!("auth.test at {}: {e}", config.slack.api_url),
                "set SLACK_BOT_TOKEN to the app's bot token (xoxb-...), with the chat:write scope",
            ));
        }
    };
    let detail = format!("auth.test: bot {} in {}", who.user, who.team);
    let Some(channel) = &config.slack.default_channel else {
        return Some(Line::ok("slack", format!("{detail}; no SLACK_DEFAULT_CHANNEL")));
    };
    Some(match api.is_member(channel).await {
        Ok(Some(true)) => Line::ok("slack", format!("{detail}; member of {channel}")),
        Ok(Some(false)) => Line::fail(
            "slack",
            format!("{detail}; not a member of {channel}"),
            format!(
                "invite the bot to {channel} (/invite @{}), or change SLACK_DEFAULT_CHANNEL",
                who.user
            ),
        ),
        Ok(None) => Line::fail(
            "slack",
            format!("{detail}; no channel {channel} visible to the bot"),
            "check SLACK_DEFAULT_CHANNEL (a channel name or id), and invite the bot to a private channel",
        ),
        Err(e) if e.to_string().contains("missing_scope") => Line {
            service: "slack",
            verdict: Verdict::Warn,
            detail: format!("{detail}; cannot tell whether it is in {channel}: {e}"),
            fix: Some("grant channels:read and groups:read to check membership (posting needs only chat:write)".into()),
        },
        Err(e) => Line::fail(
            "slack",
            format!("{detail}; looking up {channel}: {e}"),
            "check SLACK_DEFAULT_CHANNEL",
        ),
    })
}

/// HeadBucket, then a probe object put, read back and deleted, in every bucket in use.
async fn s3(config: &Config) -> Vec<Line> {
    let Some(s3) = &config.storage.s3 else {
        return Vec::new();
    };
    let mut buckets: Vec<String> = config
        .storage
        .namespaces
        .iter()
        .map(|ns| ns.bucket.clone().unwrap_or_else(|| s3.bucket.clone()))
        .collect();
    buckets.sort();
    buckets.dedup();
    let mut lines = Vec::new();
    for bucket in buckets {
        let store = blob_store::S3Store::new(&blob_store::S3Config {
            bucket: bucket.clone(),
            ..s3.clone()
        });
        let fix = format!(
            "allow s3:ListBucket on arn:aws:s3:::{bucket} and s3:GetObject, s3:PutObject, s3:DeleteObject on arn:aws:s3:::{bucket}/*; check S3_BUCKET, S3_REGION and AWS_ENDPOINT_URL_S3"
        );
        let line = match within("S3", probe_bucket(store.client(), &bucket)).await {
            Ok(Ok(detail)) => Line::ok("s3", detail),
            Ok(Err(e)) => Line::fail("s3", format!("bucket {bucket}: {e}"), fix),
            Err(e) => Line::fail("s3", format!("bucket {bucket}: {e}"), fix),
        };
        lines.push(line);
    }
    lines
}

async fn probe_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<String, String> {
    use aws_sdk_s3::error::DisplayErrorContext;
    client
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("HeadBucket: {}", DisplayErrorContext(&e)))?;
    let key = format!("{PROBE_PREFIX}{}", uuid::Uuid::now_v7());
    let body = format!("event-bridge check {key}");
    client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.clone().into_bytes().into())
        .send()
        .await
        .map_err(|e| format!("PutObject {key}: {}", DisplayErrorContext(&e)))?;
    let read = async {
        let got = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("GetObject {key}: {}", DisplayErrorContext(&e)))?;
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|e| format!("GetObject {key}: {e}"))?
            .into_bytes();
        if bytes.as_ref() == body.as_bytes() {
            Ok(())
        } else {
            Err(format!(
                "GetObject {key}: read back {} bytes that differ from what was put",
                bytes.len()
            ))
        }
    }
    .await;
    let deleted = client
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| format!("DeleteObject {key}: {}", DisplayErrorContext(&e)));
    read?;
    deleted?;
    Ok(format!("bucket {bucket}: HeadBucket; put, read back and deleted {key}"))
}

fn local_storage(config: &Config) -> Option<Line> {
    if config.storage.s3.is_some() {
        return None;
    }
    let dir = &config.storage.blob_dir;
    let probe = dir.join(format!(".event-bridge-check-{}", uuid::Uuid::now_v7()));
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"check"))
        .and_then(|()| std::fs::read(&probe))
        .and_then(|b| {
            std::fs::remove_file(&probe)?;
            Ok(b)
        });
    Some(match result {
        Ok(b) if b == b"check" => Line::ok(
            "storage",
            format!("local folder {}: written, read back, deleted", dir.display()),
        ),
        Ok(_) => Line::fail(
            "storage",
            format!("local folder {}: read back other bytes", dir.display()),
            "check the volume behind BLOB_DIR",
        ),
        Err(e) => Line::fail(
            "storage",
            format!("local folder {}: {e}", dir.display()),
            "make BLOB_DIR writable by the gateway's user (on MySQL: a volume every replica mounts), or set S3_BUCKET",
        ),
    })
}

fn unconfigured(config: &Config) -> Vec<Line> {
    use mailer::transport::MailMode;
    use slack_notify::transport::SlackMode;
    let mut lines = Vec::new();
    let mut skip = |service, detail: &str, fix: &str| {
        lines.push(Line {
            service,
            verdict: Verdict::Skip,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    };
    match config.mail.transport {
        MailMode::Ses => {}
        MailMode::Dev => skip(
            "ses",
            "dev mailbox: email is captured in the database, sent to no one",
            "set SES_SENDER_EMAIL and AWS_SES_REGION to send through SES",
        ),
        MailMode::NotConfigured => skip(
            "ses",
            "not configured: email sends answer 503 not_configured",
            "set SES_SENDER_EMAIL and AWS_SES_REGION (or MAIL_TRANSPORT=dev)",
        ),
    }
    match config.slack.transport {
        SlackMode::Slack => {}
        SlackMode::Dev => skip(
            "slack",
            "dev sink: messages are captured in the database, never sent to Slack",
            "set SLACK_BOT_TOKEN to post to Slack",
        ),
        SlackMode::NotConfigured => skip(
            "slack",
            "not configured: Slack posts answer 503 not_configured",
            "set SLACK_BOT_TOKEN (or SLACK_TRANSPORT=dev)",
        ),
    }
    lines
}

/// Runs every check; the lines in order.
pub async fn run_checks(config: &Config) -> Vec<Line> {
    let mut lines = vec![database(config).await];
    lines.extend(aws(config).await);
    lines.extend(ses(config).await);
    lines.extend(slack(config).await);
    lines.extend(s3(config).await);
    lines.extend(local_storage(config));
    lines.extend(unconfigured(config));
    lines
}

/// Prints the report; `true` when every configured service works.
pub async fn check(config: &Config) -> bool {
    let lines = run_checks(config).await;
    for line in &lines {
        println!("{}", line.render());
    }
    let failed: Vec<&str> = lines
        .iter()
        .filter(|l| l.verdict == Verdict::Fail)
        .map(|l| l.service)
        .collect();
    if failed.is_empty() {
        println!("all configured services work");
        true
    } else {
        println!("failed: {}", failed.join(", "));
        false
    }
}
