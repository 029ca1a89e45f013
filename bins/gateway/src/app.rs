//! Building and running the gateway: configuration in, a bound server out.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};
use anyhow::Context;
use bridge::BridgeService;
use license_core::LicenseError;
use mailer::transport::MailMode;
use shared_db::Backend;
use shared_db::worker::{Worker, WorkerOptions};
use slack_notify::transport::SlackMode;
use slack_notify::{PostHandler, SlackService, UpdateHandler};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::config::services::{
    key_ring, license_service, load_secret, mail_service, open_database, slack_notifier, storage,
};
use crate::error::{ApiError, PROBLEM_JSON};
use crate::http::json::JsonLimit;
use crate::http::{self, ApiDoc};
use crate::ratelimit::HolderLimits;
use crate::state::AppState;
use crate::telemetry;

/// The OpenAPI document of every registered route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(http::configure(0, 0))
        .split_for_parts();
    utoipa::Modify::modify(&http::CommonProblems, &mut doc);
    name_operations(&mut doc);
    doc
}

/// Gives every operation an `operationId` unique in the document: its tag, then its
/// handler's name (`licenses_validate`, `blobs_download`, `api_keys_list`), which client
/// generators turn into method names. A handler that already names itself so is kept.
/// A test checks that no two are the same.
fn name_operations(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        // HEAD shares its handler with GET: `blobs_download_head` beside `blobs_download`.
        let operations = [
            (&mut item.get, ""),
            (&mut item.put, ""),
            (&mut item.post, ""),
            (&mut item.delete, ""),
            (&mut item.patch, ""),
            (&mut item.head, "_head"),
            (&mut item.options, "_options"),
            (&mut item.trace, "_trace"),
        ];
        for (op, suffix) in operations {
            let Some(op) = op else { continue };
            let tag = op.tags.as_ref().and_then(|t| t.first()).map(|t| t.replace('-', "_"));
            if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut())
                && !id.starts_with(&format!("{tag}_"))
            {
                // `list_policies` under `policies` is `policies_list`.
                let singular = tag
                    .strip_suffix("ies")
                    .map_or_else(|| tag.trim_end_matches('s').to_owned(), |s| format!("{s}y"));
                let action = id
                    .strip_suffix(&format!("_{tag}"))
                    .or_else(|| id.strip_suffix(&format!("_{singular}")))
                    .unwrap_or(id);
                *id = format!("{tag}_{action}{suffix}");
            }
        }
    }
}

/// The licence-holder rate limits' canonical key: the licence-key parser's spelling, so
/// every spelling of one key (case, dashes, spaces, `O`/`0`, `I`/`L`/`1`) shares a bucket.
pub fn licence_key_canonical(key: &str) -> Option<String> {
    license_core::key::LicenseKey::parse(key)
        .ok()
        .map(|k| k.as_str().to_owned())
}

/// A bound, not yet running gateway.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    worker_stop: CancellationToken,
    worker_task: tokio::task::JoinHandle<()>,
    bridge_task: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Prepares the database, binds the port and builds the server.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let secret = load_secret(&config.secrets.source)?;
        let pool = open_database(&config).await?;
        let licenses = license_service(&config, &pool, &secret)?;
        match licenses.signer().await {
            Ok(signer) => tracing::info!(kid = signer.kid(), "licence signing key ready"),
            Err(LicenseError::Db(e)) => {
                tracing::warn!(error = %e, "licence signing key not loaded yet; retrying on first use")
            }
            Err(e) => return Err(e.into()),
        }
        let holder_limits = Arc::new(
            HolderLimits::new(config.licenses.rate_per_address, config.licenses.rate_per_key)
                .with_auth_failures(config.server.auth_failures_per_minute)
                .with_canonical_key(licence_key_canonical),
        );
        let pruned = Arc::downgrade(&holder_limits);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                match pruned.upgrade() {
                    Some(limits) => limits.prune(),
                    None => break,
                }
            }
        });
        let wake = Arc::new(tokio::sync::Notify::new());
        let notifier = slack_notifier(&config)?;
        let slack = Arc::new(SlackService::new(
            pool.clone(),
            notifier,
            config.slack.default_channel.clone(),
            config.slack.app_env.clone(),
            config.slack.messages_per_second,
            wake.clone(),
        ));
        let mail = Arc::new(mail_service(&config, &pool, wake.clone())?);
        let bridge = Arc::new(BridgeService::new(
            pool.clone(),
            mail.clone(),
            slack.clone(),
            licenses.clone(),
            key_ring(&config, &secret),
            config.bridge.clone(),
        )?);
        let job_metrics = crate::metrics::JobMetrics::new()?;
        let mut worker = Worker::new(
            pool.clone(),
            WorkerOptions {
                concurrency: config.server.worker_concurrency,
                lease: config.server.job_lease,
                ..WorkerOptions::default()
            },
        )
        .with_waker(wake.clone())
        .with_observer(Arc::new(job_metrics.clone()))
        .register(bridge::RULE_QUEUE, bridge::RuleHandler(bridge.clone()))
        .register(bridge::WEBHOOK_QUEUE, bridge::WebhookHandler(bridge.clone()));
        // A channel that is not configured takes no jobs: any queued while it was (by
        // this replica earlier, or another one) wait for a replica that can send them.
        if slack.mode() != SlackMode::NotConfigured {
            worker = worker
                .register(slack_notify::POST_QUEUE, PostHandler(slack.clone()))
                .register(slack_notify::UPDATE_QUEUE, UpdateHandler(slack.clone()));
        }
        if mail.mode() != MailMode::NotConfigured {
            worker = worker.register(mailer::SEND_QUEUE, mailer::SendHandler(mail.clone()));
        }
        let worker_stop = CancellationToken::new();
        let worker_task = tokio::spawn(worker.run(worker_stop.clone()));
        let blobs = Arc::new(blob_store::BlobService::new(
            storage(&config)?,
            pool.clone(),
            key_ring(&config, &secret),
        ));
        // The bridge's periodic work, the licence sweep (dead machines, failed validations
        // held back), storage's sweep of abandoned uploads, the hourly idempotency-key
        // purge and retention, one task.
        let bridge_task = tokio::spawn({
            let (bridge, pool, wake, stop) = (bridge.clone(), pool.clone(), wake.clone(), worker_stop.clone());
            let (retention, licenses, blobs) = (config.retention.clone(), licenses.clone(), blobs.clone());
            async move {
                tokio::join!(
                    bridge::jobs::run(bridge, wake, stop.clone()),
                    license_core::jobs::run(licenses, license_core::jobs::SWEEP_EVERY, stop.clone()),
                    blob_store::jobs::run(blobs, blob_store::jobs::SWEEP_EVERY, stop.clone()),
                    shared_db::idempotency::run_purge(pool.clone(), stop.clone()),
                    gateway_config::retention::run(pool, retention, stop)
                );
            }
        });
        let listener = TcpListener::bind((config.server.host, config.server.port)).with_context(|| {
            format!(
                "binding {}:{} (APP_HOST/APP_PORT)",
                config.server.host, config.server.port
            )
        })?;
        let port = listener.local_addr()?.port();
        let public_url = config
            .server
            .app_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"));
        let state = AppState {
            stopping: worker_stop.clone(),
            public_url: public_url.clone(),
            pool: pool.clone(),
            api_keys: access::AccessService::new(key_ring(&config, &secret))
                .with_namespaces(config.storage.namespaces.iter().map(|n| n.name.clone())),
            config: config.clone(),
            licenses,
            holder_limits,
            slack,
            mail,
            bridge,
            blobs,
        };

        let doc = openapi();
        let routes = web::Data::new(crate::routes::route_table(&doc));
        let connections = crate::net::ConnectionLimiter::new(
            config.server.max_connections_per_address,
            config.server.trusted_proxies.clone(),
        )?;
        let (metrics, queue_gauges) = crate::metrics::build(&pool, connections.refused_counter(), &job_metrics)?;
        let queue_gauges = web::Data::new(queue_gauges);
        let data = web::Data::new(state.clone());
        let authenticator = web::Data::new(crate::auth::Authenticator::new(&state));
        let cors_origins = config.server.cors_allowed_origins.clone();
        let trusted_proxies = web::Data::new(web_kit::net::TrustedProxies(config.server.trusted_proxies.clone()));
        let body_timeouts = web::Data::new(web_kit::net::BodyTimeouts {
            idle: config.server.body_idle_timeout,
            total: config.server.public_body_timeout,
            unauthenticated: crate::routes::reads_body_unauthenticated,
        });
        let max_json = config.server.max_json_body;
        let max_payload = config.server.max_json_body.max(config.storage.max_document_bytes);
        // Attachments travel base64-encoded: a third larger than the MIME they become.
        let routes_for = http::configure(
            config
                .server
                .max_json_body
                .max(config.mail.settings.max_message_bytes / 3 * 4 + 64 * 1024),
            config.server.max_json_body,
        );

        actix_http::h1::set_malformed_request_responder(crate::error::malformed_request);
        let server = HttpServer::new(move || {
            let (app, _) = App::new()
                .app_data(data.clone())
                .app_data(authenticator.clone())
                .app_data(queue_gauges.clone())
                .app_data(routes.clone())
                .app_data(trusted_proxies.clone())
                .app_data(body_timeouts.clone())
                .app_data(JsonLimit(max_json))
                .app_data(web::PayloadConfig::new(max_payload))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|err, _| ApiError::bad_request("invalid_path", err.to_string()).into()),
                )
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|err, _| ApiError::bad_request("invalid_query", err.to_string()).into()),
                )
                .into_utoipa_app()
                .openapi(ApiDoc::openapi())
                .configure(routes_for.clone())
                .split_for_parts();
            app.route("/docs", web::get().to(http::docs_redirect))
                .configure(crate::console::configure)
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc.clone()))
                .default_service(web::to(http::fallback))
                .wrap(from_fn(crate::auth::gate))
                .wrap(from_fn(crate::net::body_idle_timeout))
                .wrap(crate::cors::middleware(&cors_origins, http::signed_storage_method))
                .wrap(from_fn(crate::cors::only_when_allowed))
                .wrap(ErrorHandlers::new().default_handler(problem_fallback))
                .wrap(metrics.clone())
                .wrap(from_fn(crate::metrics::refresh_on_scrape))
                .wrap(from_fn(telemetry::request_id))
        })
        .workers(config.server.workers)
        // Signals are ours (`run_until_stopped`): jobs finish before the HTTP workers stop.
        .disable_signals()
        .max_connections(config.server.max_connections.div_ceil(config.server.workers))
        .on_connect(move |io, data| connections.on_connect(io, data))
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();

        let db_note = if config.database.is_default {
            " (embedded default: set DATABASE_URL for MySQL)"
        } else {
            ""
        };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            database = %config.database.url,
            backend = %pool.backend(),
            "database{db_note}"
        );
        if pool.backend() == Backend::Sqlite && !config.database.is_default {
            tracing::info!("running on SQLite: fine for one replica; use MySQL for several");
        }
        if let Some(tls) = config.database.url.tls()
            && tls.mode() == shared_db::SslMode::Required
        {
            tracing::warn!(
                "database TLS with ssl-mode=REQUIRED encrypts but does not check the server's certificate: set DB_SSL_CA, or use VERIFY_IDENTITY"
            );
        }
        if config.mail.ses.is_some() || config.storage.s3_credentials.is_some() {
            match config.aws.source() {
                Some(source) => tracing::info!("AWS credentials: {source}"),
                None => tracing::info!(
                    "AWS credentials: the standard chain (profile, web identity, container, instance metadata); `gateway check` says which answers"
                ),
            }
        }
        for (var, why) in &config.unused_variables {
            tracing::warn!("{var} is set but unused: {why}");
        }
        tracing::info!(
            "Event Bridge listening on http://{}:{port} (docs: {}/docs)",
            config.server.host,
            public_url.trim_end_matches('/')
        );
        Ok(Self {
            port,
            server,
            state,
            worker_stop,
            worker_task,
            bridge_task,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Shared state (tests use its pool and key service).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or a handle stops it). On a signal: stop accepting
    /// connections, let the jobs in flight finish (while the HTTP workers, whose
    /// runtimes some pooled connections belong to, are still alive), then let in-flight
    /// requests finish within the shutdown timeout, then close the pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            worker_stop,
            worker_task,
            bridge_task,
            ..
        } = self;
        let handle = server.handle();
        // Its own task: the server must keep running to answer `pause` and `stop`.
        let mut server = tokio::spawn(server);
        let stop_jobs = async {
            worker_stop.cancel();
            if let Err(e) = worker_task.await {
                tracing::error!(error = %e, "the job worker ended abnormally");
            }
            // The bridge's pass in flight ends before the pool closes (else it logs a failure).
            if let Err(e) = bridge_task.await {
                tracing::error!(error = %e, "the bridge loop ended abnormally");
            }
        };
        tokio::select! {
            served = &mut server => {
                served??;
                stop_jobs.await;
            }
            () = shutdown_signal() => {
                exit_after(state.config.server.shutdown_timeout + SHUTDOWN_MARGIN);
                tracing::info!("shutting down: no new connections; finishing jobs, then requests in flight");
                handle.pause().await;
                stop_jobs.await;
                handle.stop(true).await;
                server.await??;
            }
        }
        state.pool.close();
        tracing::info!("Event Bridge stopped");
        Ok(())
    }
}

/// What the process gets past `SHUTDOWN_TIMEOUT_SECS` before it is ended: room for the
/// HTTP server's own timeout (which starts once the jobs are done) to close what is left
/// and for the pool to close, so a shutdown that fits is still a clean one.
const SHUTDOWN_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Arms the last resort of a shutdown: once `timeout` has passed, the process exits
/// (status 1) whatever is still running: a job waiting on a peer that never answers, a
/// handler stuck in a computation, a blocking task the runtime would wait for. A plain
/// thread, so no stuck runtime can hold it up.
fn exit_after(timeout: std::time::Duration) {
    let spawned = std::thread::Builder::new().name("shutdown-deadline".into()).spawn(move || {
        std::thread::sleep(timeout);
        tracing::error!(
            timeout_secs = timeout.as_secs(),
            "shutdown timed out (SHUTDOWN_TIMEOUT_SECS): exiting with work still running; unfinished jobs run again when their lease expires"
        );
        std::process::exit(1);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot arm the shutdown deadline");
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Turns any error response that is not yet a problem document (raised by Actix itself
/// or a library) into one, so clients never see bare text or HTML.
fn problem_fallback<B>(res: actix_web::dev::ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, original) = res.into_parts();
    let mut replacement = ApiError::from_status(original.status()).error_response();
    for (name, value) in original.headers() {
        if name != actix_web::http::header::CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            replacement.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, replacement).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::IpAddr;

    use super::*;

    /// Every spelling the key parser accepts is one key, so one bucket.
    #[test]
    fn spellings_of_one_key_share_a_bucket() {
        let key = license_core::key::LicenseKey::generate().unwrap();
        let canonical = key.as_str().to_owned();
        let spellings = [
            canonical.clone(),
            canonical.to_ascii_lowercase(),
            canonical.replace('-', ""),
            canonical.replace('-', " "),
            canonical.replace('0', "O").replace('1', "l"),
            canonical.replace('0', "o").replace('1', "I"),
        ];
        let limits = HolderLimits::new(1000, spellings.len() as u32 - 1).with_canonical_key(licence_key_canonical);
        // Each from its own address, so only the key's bucket can refuse.
        let refused = (0u8..)
            .zip(&spellings)
            .filter(|(i, s)| limits.check(Some(IpAddr::from([10, 0, 0, *i])), s).is_err())
            .count();
        assert_eq!(refused, 1, "the last spelling finds the key's bucket empty");
    }
}
