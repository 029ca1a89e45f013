//! Prometheus metrics at `/metrics`: request counts and latency histograms by route
//! pattern, method and status (`actix-web-prom`), database pool usage, and the job
//! queues (jobs by queue and state, the age of the oldest), read at scrape time, and
//! every job attempt as it ends (outcome, run time, delivery latency).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::Registry;
use shared_db::DbPool;
pub use shared_db::metrics::{JobMetrics, QueueGauges};

/// Refreshes the queue gauges before `/metrics` answers.
pub async fn refresh_on_scrape(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path() == "/metrics"
        && let Some(gauges) = req.app_data::<actix_web::web::Data<Arc<QueueGauges>>>()
    {
        gauges.refresh().await;
    }
    next.call(req).await
}

/// Builds the metrics middleware (which also serves `/metrics`).
/// `refused` counts connections closed by the per-address limit.
pub fn build(
    pool: &DbPool,
    refused: prometheus::IntCounter,
    jobs: &JobMetrics,
) -> anyhow::Result<(actix_web_prom::PrometheusMetrics, Arc<QueueGauges>)> {
    let registry = Registry::new();
    let queues = shared_db::metrics::register(pool, &registry, jobs)?;
    registry.register(Box::new(refused))?;
    let metrics = actix_web_prom::PrometheusMetricsBuilder::new("event_bridge")
        .registry(registry)
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    Ok((metrics, queues))
}
