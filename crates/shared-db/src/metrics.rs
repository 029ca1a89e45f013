//! Prometheus metrics of the database and its job queues, for whoever serves `/metrics`:
//! the jobs by queue and state and the age of the oldest (read from the database at
//! scrape time, [`QueueGauges`]), every job attempt as it ends ([`JobMetrics`], the
//! worker's observer) and the pool's connections by state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::DbPool;
use crate::worker::{Attempt, AttemptOutcome, JobObserver};

/// Registers the database's metrics in `registry`: the queue gauges (returned, to be
/// refreshed before each scrape), `jobs` (the worker's observer) and the pool gauge.
pub fn register(pool: &DbPool, registry: &Registry, jobs: &JobMetrics) -> prometheus::Result<Arc<QueueGauges>> {
    let queues = Arc::new(QueueGauges::new(pool, registry)?);
    jobs.register(registry)?;
    let gauge = IntGaugeVec::new(
        Opts::new("event_bridge_db_pool_connections", "Database pool connections by state"),
        &["state"],
    )?;
    registry.register(Box::new(PoolCollector {
        pool: pool.clone(),
        gauge,
    }))?;
    Ok(queues)
}

/// The job queues' gauges, refreshed from the database when `/metrics` is scraped (at
/// most once a second, and never waiting more than a second for the database).
pub struct QueueGauges {
    pool: DbPool,
    jobs: IntGaugeVec,
    oldest: GaugeVec,
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl QueueGauges {
    fn new(pool: &DbPool, registry: &Registry) -> prometheus::Result<Self> {
        let jobs = IntGaugeVec::new(
            Opts::new(
                "event_bridge_jobs",
                "Jobs by queue and state (queued, waiting, running, failed); finished jobs are deleted",
            ),
            &["queue", "state"],
        )?;
        let oldest = GaugeVec::new(
            Opts::new(
                "event_bridge_jobs_oldest_seconds",
                "Age of the oldest job by queue and state, in seconds (queued: how far behind the queue is)",
            ),
            &["queue", "state"],
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(oldest.clone()))?;
        Ok(Self {
            pool: pool.clone(),
            jobs,
            oldest,
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// Reads the queues again unless that was done less than a second ago.
    pub async fn refresh(&self) {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        let read = async {
            let mut conn = self.pool.get().await?;
            crate::jobs::queue_states(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Ok(Ok(states)) => {
                self.jobs.reset();
                self.oldest.reset();
                let now = crate::now();
                for s in states {
                    let labels = [s.queue.as_str(), s.status.as_str()];
                    self.jobs.with_label_values(&labels).set(s.count);
                    let age = (now - s.oldest).num_milliseconds().max(0) as f64 / 1000.0;
                    self.oldest.with_label_values(&labels).set(age);
                }
                *last = Some(Instant::now());
            }
            // The gauges keep their last values; the scrape still answers.
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: reading the job queues failed"),
            Err(_) => tracing::warn!("metrics: reading the job queues took over a second; skipped"),
        }
    }
}

/// Job attempts as the worker reports them: `event_bridge_job_attempts_total{queue,
/// outcome}`, `event_bridge_job_attempt_seconds{queue}` (handler time) and
/// `event_bridge_job_delivery_seconds{queue}` (enqueue to success, retries included: the
/// delivery latency of `email.send`, `slack.post`, `bridge.webhook`...).
#[derive(Clone)]
pub struct JobMetrics {
    attempts: IntCounterVec,
    run: HistogramVec,
    delivery: HistogramVec,
}

impl JobMetrics {
    /// Unregistered until [`register`] adds them to the registry.
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            attempts: IntCounterVec::new(
                Opts::new(
                    "event_bridge_job_attempts_total",
                    "Job attempts by queue and outcome (succeeded, retrying, failed, deferred, abandoned)",
                ),
                &["queue", "outcome"],
            )?,
            run: HistogramVec::new(
                HistogramOpts::new("event_bridge_job_attempt_seconds", "How long one attempt's handler ran").buckets(
                    vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                ),
                &["queue"],
            )?,
            delivery: HistogramVec::new(
                HistogramOpts::new(
                    "event_bridge_job_delivery_seconds",
                    "From enqueue to success, waits and retries included (delivery latency)",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ]),
                &["queue"],
            )?,
        })
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.attempts.clone()))?;
        registry.register(Box::new(self.run.clone()))?;
        registry.register(Box::new(self.delivery.clone()))?;
        Ok(())
    }
}

impl JobObserver for JobMetrics {
    fn attempt(&self, a: Attempt<'_>) {
        self.attempts.with_label_values(&[a.queue, a.outcome.as_str()]).inc();
        if a.outcome != AttemptOutcome::Deferred {
            self.run.with_label_values(&[a.queue]).observe(a.ran_for.as_secs_f64());
        }
        if a.outcome == AttemptOutcome::Succeeded {
            self.delivery
                .with_label_values(&[a.queue])
                .observe(a.since_enqueued.as_secs_f64());
        }
    }
}

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
