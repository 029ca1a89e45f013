//! Idempotency keys, the event outbox, and the migrations that rewrite existing data.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_conflict_and_expire() {
    use shared_db::idempotency::{self, Key, Owner, Seen};
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let h1 = idempotency::request_hash(b"{\"a\":1}");
        let h2 = idempotency::request_hash(b"{\"a\":2}");
        let (alice, bob, bridge) = (
            Owner::ApiKey("alice".into()),
            Owner::ApiKey("bob".into()),
            Owner::System("bridge"),
        );
        let key = |owner, hash| Key { owner, key: "k1", hash };
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::New
        );
        idempotency::remember(&mut conn, "emails", key(&alice, &h1), "res-1")
            .await
            .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::Replay("res-1".into())
        );
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h2)).await.unwrap(),
            Seen::Conflict
        );
        assert_eq!(
            idempotency::check(&mut conn, "slack", key(&alice, &h2)).await.unwrap(),
            Seen::New,
            "keys are per scope"
        );
        // Keys are per owner: another API key, or the bridge, neither replays nor conflicts.
        for other in [&bob, &bridge] {
            for h in [&h1, &h2] {
                assert_eq!(
                    idempotency::check(&mut conn, "emails", key(other, h)).await.unwrap(),
                    Seen::New,
                    "{other:?}"
                );
            }
        }
        idempotency::remember(&mut conn, "emails", key(&bob, &h2), "res-bob")
            .await
            .unwrap();
        idempotency::remember(&mut conn, "emails", key(&bridge, &h2), "res-bridge")
            .await
            .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&bob, &h2)).await.unwrap(),
            Seen::Replay("res-bob".into())
        );
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h1)).await.unwrap(),
            Seen::Replay("res-1".into())
        );
        let dup = idempotency::remember(&mut conn, "emails", key(&alice, &h1), "res-2")
            .await
            .unwrap_err();
        assert!(dup.is_unique_violation());
        // Older than 24 hours: forgotten.
        let old = shared_db::now() - chrono::Duration::hours(25);
        with_conn!(&mut *conn, |c| diesel::update(schema::idempotency_keys::table)
            .set(schema::idempotency_keys::created_at.eq(old))
            .execute(c)
            .await)
        .unwrap();
        assert_eq!(
            idempotency::check(&mut conn, "emails", key(&alice, &h2)).await.unwrap(),
            Seen::New,
            "{}",
            db.backend()
        );
        assert!(
            idempotency::valid_key("order-123_abc") && !idempotency::valid_key("") && !idempotency::valid_key("a b")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_hands_each_event_to_one_claimer() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        for n in 0..5 {
            events::record(&mut conn, "x.done", "cli", "x:1", serde_json::json!({ "n": n }))
                .await
                .unwrap();
        }
        assert!(events::any_undispatched(&mut conn).await.unwrap());
        let mut other = db.pool.get().await.unwrap();
        let (mine, theirs) = if db.backend() == Backend::Mysql {
            // Two claimers in open transactions at once: MySQL skips the rows the first holds.
            events::prefer_read_committed(&mut conn).await.unwrap();
            conn.transaction::<_, DbError, _>(async |c| {
                let mine = events::claim_undispatched(c, 3).await?;
                let theirs = other
                    .transaction::<_, DbError, _>(async |o| events::claim_undispatched(o, 10).await)
                    .await?;
                events::mark_dispatched(c, &mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await?;
                Ok((mine, theirs))
            })
            .await
            .unwrap()
        } else {
            // SQLite: one writer at a time; the second claims after the first committed.
            let mine = conn
                .transaction::<_, DbError, _>(async |c| {
                    let mine = events::claim_undispatched(c, 3).await?;
                    events::mark_dispatched(c, &mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).await?;
                    Ok(mine)
                })
                .await
                .unwrap();
            let theirs = other
                .transaction::<_, DbError, _>(async |o| events::claim_undispatched(o, 10).await)
                .await
                .unwrap();
            (mine, theirs)
        };
        assert_eq!(mine.len(), 3, "{}", db.backend());
        assert_eq!(theirs.len(), 2, "{}: the rest, none twice", db.backend());
        assert!(mine.iter().all(|e| !theirs.contains(e)));
        assert!(mine.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        let rest: Vec<String> = theirs.iter().map(|e| e.id.clone()).collect();
        events::mark_dispatched(&mut other, &rest).await.unwrap();
        assert!(!events::any_undispatched(&mut conn).await.unwrap());
    }
}

/// The outbox migration on a database that already has events: from 15 s before the
/// old bridge's cursor on they wait for the bridge (however far behind it was), older
/// ones count as dispatched, and rows inserted without naming the column (an older
/// replica) wait too. Without a cursor, the last ten minutes wait. Reverting seeds the
/// cursor at the oldest waiting event, so the older bridge takes up the backlog.
#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_migration_offers_only_recent_events_again() {
    use diesel_async::SimpleAsyncConnection;
    /// A UUIDv7 of the time `t`, as the events table stores ids.
    fn id_at(t: chrono::NaiveDateTime) -> String {
        let t = t.and_utc();
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            t.timestamp() as u64,
            t.timestamp_subsec_nanos(),
        ))
        .to_string()
    }
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    for db in TestDb::each().await {
        let (down, up) = match db.backend() {
            Backend::Mysql => (
                include_str!("../../../../migrations/mysql/2026-12-02-080000_event_outbox/down.sql"),
                include_str!("../../../../migrations/mysql/2026-12-02-080000_event_outbox/up.sql"),
            ),
            Backend::Sqlite => (
                include_str!("../../../../migrations/sqlite/2026-12-02-080000_event_outbox/down.sql"),
                include_str!("../../../../migrations/sqlite/2026-12-02-080000_event_outbox/up.sql"),
            ),
        };
        let mut conn = db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let now = shared_db::now();
        // The old bridge stopped two hours ago (its cursor), with the fleet down since.
        let cursor = now - chrono::Duration::hours(2);
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "INSERT INTO eb_bridge_state (name, value) VALUES ('events_cursor', ?)"
        )
        .bind::<diesel::sql_types::Text, _>(cursor.and_utc().to_rfc3339())
        .execute(c)
        .await)
        .unwrap();
        let mut ids = HashMap::new();
        let mut times = HashMap::new();
        for (name, at) in [
            ("before-the-cursor", cursor - chrono::Duration::minutes(1)),
            ("in-the-overlap", cursor - chrono::Duration::seconds(10)),
            ("an-hour-ago", now - chrono::Duration::hours(1)),
            ("eleven-minutes-ago", now - chrono::Duration::minutes(11)),
            ("nine-minutes-ago", now - chrono::Duration::minutes(9)),
        ] {
            let id = id_at(at);
            with_conn!(&mut *conn, |c| diesel::sql_query(
                "INSERT INTO eb_events (id, occurred_at, event_type, data) VALUES (?, ?, 'x.done', '{}')"
            )
            .bind::<diesel::sql_types::Text, _>(&id)
            .bind::<diesel::sql_types::Timestamp, _>(at)
            .execute(c)
            .await)
            .unwrap();
            ids.insert(id, name);
            times.insert(name, at);
        }
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        let older = shared_db::new_id();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "INSERT INTO eb_events (id, occurred_at, event_type, data) VALUES (?, ?, 'x.done', '{}')"
        )
        .bind::<diesel::sql_types::Text, _>(&older)
        .bind::<diesel::sql_types::Timestamp, _>(now)
        .execute(c)
        .await)
        .unwrap();
        ids.insert(older, "written-by-an-older-replica");
        let waiting = async |conn: &mut DbConn| -> Vec<&str> {
            conn.transaction::<_, DbError, _>(async |c| Ok(events::claim_undispatched(c, 10).await?))
                .await
                .unwrap()
                .into_iter()
                .map(|e| ids[&e.id])
                .collect()
        };
        assert_eq!(
            waiting(&mut *conn).await,
            [
                "in-the-overlap",
                "an-hour-ago",
                "eleven-minutes-ago",
                "nine-minutes-ago",
                "written-by-an-older-replica"
            ],
            "{}: everything from 15 s before the old cursor on",
            db.backend()
        );

        // Reverting: the older bridge's cursor starts at the oldest waiting event (at
        // most a second before it; SQLite keeps whole seconds).
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let state: Vec<State> = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT value FROM eb_bridge_state WHERE name = 'events_cursor'"
        )
        .load(c)
        .await)
        .unwrap();
        assert_eq!(state.len(), 1, "{}: the down migration seeds the cursor", db.backend());
        let seeded = chrono::DateTime::parse_from_rfc3339(&state[0].value)
            .unwrap_or_else(|e| panic!("{}: {:?}: {e}", db.backend(), state[0].value))
            .naive_utc();
        let oldest = times["in-the-overlap"];
        assert!(
            seeded <= oldest && oldest - seeded < chrono::Duration::seconds(1),
            "{}: cursor {seeded} for the oldest waiting event at {oldest}",
            db.backend()
        );

        // No cursor (the bridge never ran): only the last ten minutes wait.
        with_conn!(&mut *conn, |c| c.batch_execute("DELETE FROM eb_bridge_state").await).unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        assert_eq!(
            waiting(&mut *conn).await,
            ["nine-minutes-ago", "written-by-an-older-replica"],
            "{}: without a cursor, the last ten minutes",
            db.backend()
        );
    }
}

/// The owner migration on a database with keys: expired keys (older than 24 h, never
/// purged before) are dropped, live ones go to the creator of the resource they name,
/// one scope at a time, and the rest to `legacy`.
#[tokio::test(flavor = "multi_thread")]
async fn the_idempotency_owner_migration_drops_expired_keys_and_backfills_owners() {
    use diesel_async::SimpleAsyncConnection;
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        owner: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        scope: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        idem_key: String,
    }
    for db in TestDb::each().await {
        let (down, up) = match db.backend() {
            Backend::Mysql => (
                include_str!("../../../../migrations/mysql/2026-12-02-000008_idempotency_owner/down.sql"),
                include_str!("../../../../migrations/mysql/2026-12-02-000008_idempotency_owner/up.sql"),
            ),
            Backend::Sqlite => (
                include_str!("../../../../migrations/sqlite/2026-12-02-000008_idempotency_owner/down.sql"),
                include_str!("../../../../migrations/sqlite/2026-12-02-000008_idempotency_owner/up.sql"),
            ),
        };
        let mut conn = db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(down).await).unwrap();
        let at = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let now = at(shared_db::now());
        let expired = at(shared_db::now() - chrono::Duration::hours(25));
        let fixture = format!(
            "INSERT INTO eb_email_messages (id, batch_id, from_addr, subject, status, summary, raw_mime, size, created_by, created_at, updated_at) VALUES
                ('m1', 'b1', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:abc', '{now}', '{now}'),
                ('m2', 'b2', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:def', '{now}', '{now}'),
                ('m3', 'b2', 'a@example.com', 's', 'sent', '{{}}', '', 0, 'api_key:def', '{now}', '{now}');
             INSERT INTO eb_slack_messages (id, channel, level, title, request, status, created_by, created_at, updated_at) VALUES
                ('s1', '#ops', 'info', 't', '{{}}', 'posted', 'bridge:rule-1', '{now}', '{now}');
             INSERT INTO eb_idempotency_keys (scope, idem_key, request_hash, resource_id, created_at) VALUES
                ('emails', 'k1', 'h', 'm1', '{now}'),
                ('emails.batch', 'k2', 'h', 'b2', '{now}'),
                ('slack.messages', 'k3', 'h', 's1', '{now}'),
                ('sns', 'k4', 'h', 'x', '{now}'),
                ('emails', 'k5', 'h', 'unknown', '{now}'),
                ('emails', 'k6-expired', 'h', 'm1', '{expired}');"
        );
        with_conn!(&mut *conn, |c| c.batch_execute(&fixture).await).unwrap();
        with_conn!(&mut *conn, |c| c.batch_execute(up).await).unwrap();
        let rows: Vec<Row> = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT owner, scope, idem_key FROM eb_idempotency_keys ORDER BY idem_key"
        )
        .load(c)
        .await)
        .unwrap();
        let row = |owner: &str, scope: &str, idem_key: &str| Row {
            owner: owner.into(),
            scope: scope.into(),
            idem_key: idem_key.into(),
        };
        assert_eq!(
            rows,
            [
                row("key:abc", "emails", "k1"),
                row("key:def", "emails.batch", "k2"),
                row("system:bridge", "slack.messages", "k3"),
                row("system:sns", "sns", "k4"),
                row("legacy", "emails", "k5"),
            ],
            "{}",
            db.backend()
        );
    }
}

/// Expired idempotency keys are purged in bulk (most are never looked up again, which
/// was the only time they were deleted); live ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn expired_idempotency_keys_are_purged() {
    use shared_db::idempotency::{self, Key, Owner};
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let owner = Owner::ApiKey("k".into());
        let key = |k: &'static str| Key {
            owner: &owner,
            key: k,
            hash: "h",
        };
        idempotency::remember(&mut conn, "emails", key("live"), "r1")
            .await
            .unwrap();
        for (k, hours) in [("expired-1", 25), ("expired-2", 48)] {
            with_conn!(&mut *conn, |c| diesel::sql_query(
                "INSERT INTO eb_idempotency_keys (owner, scope, idem_key, request_hash, resource_id, created_at) VALUES ('key:k', 'emails', ?, 'h', 'r', ?)"
            )
            .bind::<diesel::sql_types::Text, _>(k)
            .bind::<diesel::sql_types::Timestamp, _>(shared_db::now() - chrono::Duration::hours(hours))
            .execute(c)
            .await)
            .unwrap();
        }
        assert_eq!(
            idempotency::purge_expired(&mut conn).await.unwrap(),
            2,
            "{}",
            db.backend()
        );
        let left: Vec<String> = with_conn!(&mut *conn, |c| schema::idempotency_keys::table
            .select(schema::idempotency_keys::idem_key)
            .load(c)
            .await)
        .unwrap();
        assert_eq!(left, ["live"], "{}", db.backend());
        assert_eq!(idempotency::purge_expired(&mut conn).await.unwrap(), 0);
    }
}
