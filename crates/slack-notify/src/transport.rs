//! Where messages go: Slack's Web API through slack-morphism, or a development sink
//! that captures everything (the messages stay in the database, marked `captured`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::layout::Rendered;

/// Where Slack put a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel id Slack answered with.
    pub channel: String,
    /// The message's timestamp (its id in Slack).
    pub ts: String,
}

/// Why Slack did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429: wait (`Retry-After` when Slack gave one) and try again.
    #[error("rate limited by Slack")]
    RateLimited(Option<Duration>),
    /// Slack refused for good (`channel_not_found`, `not_in_channel`, `invalid_auth`...).
    #[error("{0}")]
    Permanent(String),
    /// A network or server fault: try again later.
    #[error("{0}")]
    Transient(String),
}

/// How Slack messages leave this gateway (`SLACK_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SlackMode {
    /// Through Slack's Web API with the bot token.
    Slack,
    /// Captured by the dev sink: kept in the database, never sent to Slack.
    Dev,
    /// No transport: posts and updates are refused (503 `not_configured`) and nothing
    /// is stored.
    NotConfigured,
}

impl SlackMode {
    /// `slack`, `dev` or `not_configured`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlackMode::Slack => "slack",
            SlackMode::Dev => "dev",
            SlackMode::NotConfigured => "not_configured",
        }
    }
}

impl std::fmt::Display for SlackMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sends rendered messages.
pub trait SlackNotifier: Send + Sync + 'static {
    /// `chat.postMessage`, as a reply in `thread_ts` when given.
    fn post<'a>(
        &'a self,
        channel: &'a str,
        message: &'a Rendered,
        thread_ts: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Posted, SlackError>>;

    /// `chat.update` of the message `ts` in `channel`.
    fn update<'a>(
        &'a self,
        channel: &'a str,
        ts: &'a str,
        message: &'a Rendered,
    ) -> BoxFuture<'a, Result<Posted, SlackError>>;

    /// `slack` or `dev`, for logs and the status.
    fn name(&self) -> &'static str;

    /// True when messages are only kept, never sent (the dev sink): what it "posts" is
    /// marked `captured`, not `posted`.
    fn captures(&self) -> bool {
        false
    }
}

/// Error codes after which retrying cannot help.
const PERMANENT: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "no_permission",
    "restricted_action",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "invalid_blocks",
    "invalid_attachments",
    "invalid_arguments",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "thread_not_found",
];

fn classify(e: SlackClientError) -> SlackError {
    match e {
        SlackClientError::RateLimitError(r) => SlackError::RateLimited(r.retry_after),
        SlackClientError::ApiError(a) if a.code == "ratelimited" => SlackError::RateLimited(None),
        SlackClientError::ApiError(a) if PERMANENT.contains(&a.code.as_str()) => SlackError::Permanent(a.code),
        SlackClientError::ApiError(a) => SlackError::Transient(a.code),
        other => SlackError::Transient(other.to_string()),
    }
}

fn content(message: &Rendered) -> Result<SlackMessageContent, SlackError> {
    serde_json::from_value(serde_json::json!({ "text": message.text, "attachments": message.attachments }))
        .map_err(|e| SlackError::Permanent(format!("invalid_blocks: {e}")))
}

type Connector =
    SlackClientHyperConnector<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>>;

/// How long one Web API call may take before it counts as a transient failure (and is
/// tried again): a Slack that accepts connections and never answers must not hold a
/// channel's queue, or a shutdown, forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Slack's Web API with a bot token.
pub struct SlackApi {
    client: SlackClient<Connector>,
    token: SlackApiToken,
    timeout: Duration,
}

impl SlackApi {
    /// A client for `api_url` (`https://slack.com/api` by default; plain `http://` is
    /// accepted, for test servers).
    pub fn new(token: &str, api_url: &str) -> Result<Self, SlackError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| SlackError::Permanent(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url.trim_end_matches('/'));
        Ok(Self {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue(token.to_owned())),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Another limit for one call than [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs one call within the timeout.
    async fn call<T>(&self, call: impl Future<Output = Result<T, SlackClientError>>) -> Result<T, SlackError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(SlackError::Transient(format!(
                "Slack did not answer within {} s",
                self.timeout.as_secs_f32()
            ))),
        }
    }
}

/// Who the bot token belongs to (`auth.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// The workspace's name.
    pub team: String,
    /// The bot user's name, or its id.
    pub user: String,
}

impl SlackApi {
    /// `auth.test`: whether the token works, and whose it is.
    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let session = self.client.open_session(&self.token);
        let res = self.call(session.auth_test()).await?;
        Ok(BotIdentity {
            team: res.team,
            user: res.user.unwrap_or(res.user_id.0),
        })
    }

    /// Whether the bot is a member of `channel` (an id such as `C0123ABCD`, or a name
    /// with or without `#`): `conversations.info` for an id, `conversations.list` (paged)
    /// for a name. `Ok(None)`: no such channel visible to the bot.
    pub async fn is_member(&self, channel: &str) -> Result<Option<bool>, SlackError> {
        let session = self.client.open_session(&self.token);
        let name = channel.trim_start_matches('#');
        let looks_like_id = name.len() >= 9
            && name.starts_with(['C', 'G', 'D'])
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if looks_like_id {
            let request = SlackApiConversationsInfoRequest::new(SlackChannelId(name.to_owned()));
            return match self.call(session.conversations_info(&request)).await {
                Ok(res) => Ok(Some(res.channel.flags.is_member.unwrap_or(false))),
                Err(SlackError::Permanent(code)) if code == "channel_not_found" => Ok(None),
                Err(e) => Err(e),
            };
        }
        let mut cursor = None;
        // 50 pages of 1,000: far beyond any workspace's channel count.
        for _ in 0..50 {
            let request = SlackApiConversationsListRequest::new()
                .with_limit(1000)
                .with_exclude_archived(true)
                .with_types(vec![SlackConversationType::Public, SlackConversationType::Private])
                .opt_cursor(cursor.take());
            let res = self.call(session.conversations_list(&request)).await?;
            if let Some(found) = res.channels.iter().find(|c| c.name.as_deref() == Some(name)) {
                return Ok(Some(found.flags.is_member.unwrap_or(false)));
            }
            match res
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.0.is_empty())
            {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(None)
    }
}

impl SlackNotifier for SlackApi {
    fn post<'a>(
        &'a self,
        channel: &'a str,
        message: &'a Rendered,
        thread_ts: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Posted, SlackError>> {
        Box::pin(async move {
            let request = SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_owned()), content(message)?)
                .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_owned())))
                .with_unfurl_links(false);
            let session = self.client.open_session(&self.token);
            let res = self.call(session.chat_post_message(&request)).await?;
            Ok(Posted {
                channel: res.channel.0,
                ts: res.ts.0,
            })
        })
    }

    fn update<'a>(
        &'a self,
        channel: &'a str,
        ts: &'a str,
        message: &'a Rendered,
    ) -> BoxFuture<'a, Result<Posted, SlackError>> {
        Box::pin(async move {
            let request = SlackApiChatUpdateRequest::new(
                SlackChannelId(channel.to_owned()),
                content(message)?,
                SlackTs(ts.to_owned()),
            );
            let session = self.client.open_session(&self.token);
            let res = self.call(session.chat_update(&request)).await?;
            Ok(Posted {
                channel: res.channel.0,
                ts: res.ts.0,
            })
        })
    }

    fn name(&self) -> &'static str {
        "slack"
    }
}

/// Accepts every message without sending it (`SLACK_TRANSPORT=dev`, or no token on the
/// embedded database): the messages are kept (rendered on demand) in the database, and
/// marked `captured` with a `dev.` timestamp.
#[derive(Default)]
pub struct DevSink {
    next: AtomicU64,
}

impl SlackNotifier for DevSink {
    fn post<'a>(
        &'a self,
        channel: &'a str,
        _message: &'a Rendered,
        _thread_ts: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Posted, SlackError>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let ts = format!("dev.{}{n:06}", chrono::Utc::now().timestamp());
        Box::pin(async move {
            Ok(Posted {
                channel: channel.to_owned(),
                ts,
            })
        })
    }

    fn update<'a>(
        &'a self,
        channel: &'a str,
        ts: &'a str,
        _message: &'a Rendered,
    ) -> BoxFuture<'a, Result<Posted, SlackError>> {
        Box::pin(async move {
            Ok(Posted {
                channel: channel.to_owned(),
                ts: ts.to_owned(),
            })
        })
    }

    fn name(&self) -> &'static str {
        "dev"
    }

    fn captures(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A Slack that takes the connection and never answers fails the call as transient
    /// (tried again later) once the timeout passes, instead of holding it forever.
    #[tokio::test]
    async fn a_silent_slack_times_out_as_a_transient_failure() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        let api = SlackApi::new("xoxb-test", &url)
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let message = Rendered {
            text: "t".into(),
            attachments: serde_json::json!([]),
        };
        let posted = api.post("C1", &message, None).await;
        assert!(
            matches!(&posted, Err(SlackError::Transient(why)) if why.contains("did not answer")),
            "{posted:?}"
        );
        let updated = api.update("C1", "1.2", &message).await;
        assert!(matches!(updated, Err(SlackError::Transient(_))), "{updated:?}");
        held.abort();
    }
}
