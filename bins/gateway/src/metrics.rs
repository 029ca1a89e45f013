//! Prometheus metrics at `/metrics`: request counts and latency histograms by route
//! pattern, method and status (`actix-web-prom`), and database pool usage read at
//! scrape time.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};
use shared_db::DbPool;

/// Reports `event_bridge_db_pool_connections{state}` from the pool when scraped.
struct PoolCollector {
    pool: DbPool,
    gauge: IntGaugeVec,
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.pool.status();
        for (state, value) in [
            ("max", s.max_size),
            ("open", s.size),
            ("idle", s.idle),
            ("waiting", s.waiting),
        ] {
            self.gauge
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.gauge.collect()
    }
}

/// Builds the metrics middleware (which also serves `/metrics`).
/// `refused` counts connections closed by the per-address limit.
pub fn build(pool: &DbPool, refused: prometheus::IntCounter) -> anyhow::Result<actix_web_prom::PrometheusMetrics> {
    let registry = Registry::new();
    registry.register(Box::new(refused))?;
    let gauge = IntGaugeVec::new(
        Opts::new("event_bridge_db_pool_connections", "Database pool connections by state"),
        &["state"],
    )?;
    registry.register(Box::new(PoolCollector {
        pool: pool.clone(),
        gauge,
    }))?;
    actix_web_prom::PrometheusMetricsBuilder::new("event_bridge")
        .registry(registry)
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))
}
