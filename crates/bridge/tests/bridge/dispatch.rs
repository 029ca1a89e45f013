//! Dispatch: every event bridged exactly once, late commits and replicas included.

use super::*;

/// An event whose transaction stays open for 20 s is dispatched once it commits, exactly
/// once, although dispatch ran meanwhile (and, on MariaDB, bridged later events first).
async fn late_commit(db: TestDb) {
    let r = rig(db, internal_ok()).await;
    announce_issued(&r).await;
    r.bridge.dispatch().await.unwrap();
    // SQLite has one writer at a time: while the transaction is open nothing else commits.
    let others_commit = r.db.backend() == shared_db::Backend::Mysql;
    let (bridge, db) = (&r.bridge, &r.db);
    let mut held = r.db.pool.get().await.unwrap();
    let late = held
        .transaction::<_, shared_db::DbError, _>(async |c| {
            let late = events::append(
                c,
                events::NewEvent {
                    event_type: "license.issued",
                    actor: Some("api_key:k"),
                    subject: Some("license:late"),
                    data: json!({}),
                },
            )
            .await?;
            assert_eq!(bridge.dispatch().await.unwrap(), 0, "not committed yet");
            tokio::time::sleep(Duration::from_secs(20)).await;
            if others_commit {
                let mut conn = db.pool.get().await.unwrap();
                events::record(&mut conn, "license.issued", "api_key:k", "license:later", json!({}))
                    .await
                    .unwrap();
                assert_eq!(bridge.dispatch().await.unwrap(), 1, "the later event");
            }
            assert_eq!(bridge.dispatch().await.unwrap(), 0, "still not committed");
            Ok(late)
        })
        .await
        .unwrap();
    drop(held);
    assert_eq!(
        r.bridge.dispatch().await.unwrap(),
        1,
        "{}: the late event, once committed",
        r.db.backend()
    );
    assert_eq!(r.bridge.dispatch().await.unwrap(), 0, "and only once");
    assert_eq!(jobs_for(&r, &late.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_committed_late_is_dispatched_exactly_once() {
    futures_util::future::join_all(TestDb::each().await.into_iter().map(late_commit)).await;
}

/// An event written by a replica whose clock lags (its time and UUIDv7 id a minute
/// behind), after later events were bridged, is dispatched all the same.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_from_a_lagging_clock_is_dispatched() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        announce_issued(&r).await;
        r.bridge.dispatch().await.unwrap();
        record(&r, "license.issued", "api_key:k", json!({})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        let behind = chrono::Utc::now() - chrono::Duration::minutes(1);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            behind.timestamp() as u64,
            behind.timestamp_subsec_nanos(),
        );
        let lagging = events::Event {
            id: uuid::Uuid::new_v7(ts).to_string(),
            occurred_at: behind.naive_utc(),
            event_type: "license.issued".into(),
            actor: Some("api_key:k".into()),
            subject: Some("license:lagging".into()),
            data: "{}".into(),
        };
        // Inserted as an older replica would: without naming the outbox column.
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::insert_into(shared_db::schema::events::table)
            .values(&lagging)
            .execute(c)
            .await)
        .unwrap();
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1, "{}", r.db.backend());
        assert_eq!(r.bridge.dispatch().await.unwrap(), 0);
        assert_eq!(jobs_for(&r, &lagging.id).await, 1);
    }
}

/// Four replicas dispatching at once queue each delivery exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_never_dispatch_one_event_twice() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        announce_issued(&r).await;
        let replicas: Vec<Arc<BridgeService>> = (0..4).map(|_| r.another_bridge(internal_ok())).collect();
        replicas[0].dispatch().await.unwrap();
        for i in 0..300 {
            record(&r, "license.issued", "api_key:k", json!({ "n": i })).await;
        }
        let runs = replicas.iter().map(|b| {
            let b = b.clone();
            let pool = r.db.pool.clone();
            tokio::spawn(async move {
                let mut queued = 0;
                loop {
                    queued += b.dispatch().await.unwrap();
                    let mut conn = pool.get().await.unwrap();
                    if !events::any_undispatched(&mut conn).await.unwrap() {
                        return queued;
                    }
                }
            })
        });
        let queued: usize = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(queued, 300, "{}", r.db.backend());
        let mut conn = r.db.pool.get().await.unwrap();
        let counts = shared_db::jobs::counts(&mut conn, RULE_QUEUE).await.unwrap();
        assert_eq!(counts, vec![("queued".to_owned(), 300)], "{}", r.db.backend());
    }
}
