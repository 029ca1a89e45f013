//! Licence reminders and expiries.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn expiry_reminders_and_expired_events_happen_once() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        r.bridge.ensure_reminder_template().await.unwrap();
        let (far, _) = r.licenses.issue(issue("Far", 20), "t").await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        let (day, _) = r.licenses.issue(issue("Day", 1), "t").await.unwrap();
        let (later, _) = r.licenses.issue(issue("Later", 90), "t").await.unwrap();
        let (gone, _) = r.licenses.issue(issue("Gone", 3), "t").await.unwrap();
        // `Gone` expired an hour ago.
        let mut conn = r.db.pool.get().await.unwrap();
        let past = shared_db::now() - chrono::Duration::hours(1);
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE eb_licenses SET expires_at = ? WHERE id = ?"
        )
        .bind::<diesel::sql_types::Timestamp, _>(past)
        .bind::<diesel::sql_types::Text, _>(&gone.id)
        .execute(c)
        .await)
        .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (3, 1));
        assert_eq!(
            r.bridge.run_reminders().await.unwrap(),
            (0, 0),
            "running it twice sends nothing twice"
        );

        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let mut to: Vec<(String, String)> = emails
            .iter()
            .map(|e| (e.to[0].clone(), e.tags["reminder"].clone()))
            .collect();
        to.sort();
        assert_eq!(
            to,
            [
                ("day@example.org".to_owned(), "1d".to_owned()),
                ("far@example.org".to_owned(), "30d".to_owned()),
                ("week@example.org".to_owned(), "7d".to_owned()),
            ]
        );
        let week_mail = emails.iter().find(|e| e.to[0] == "week@example.org").unwrap();
        assert_eq!(week_mail.subject, "Your client licence \"Week\" expires in 5 days");
        let posts = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert_eq!(posts.len(), 3);
        assert!(
            posts
                .iter()
                .all(|p| p.channel == "#licences" && p.level == Level::Warning)
        );
        let trail = events::for_subject(&mut conn, &format!("license:{}", gone.id))
            .await
            .unwrap();
        assert_eq!(trail.iter().filter(|e| e.event_type == "license.expired").count(), 1);
        let _ = (far, week, day, later);
    }
}

/// A reminder's idempotency key is predictable (`reminder:<licence>:<days>:<expiry>`):
/// an API key that uses it first, with the same request hash or another, must neither
/// take the reminder's place nor block it.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_cannot_block_a_reminder() {
    use shared_db::idempotency::{self, Key, Owner};
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        let mark = format!("reminder:{}:7:{}", week.id, week.expires_at.unwrap().timestamp());
        let hash = idempotency::request_hash(mark.as_bytes());
        let attacker = Owner::ApiKey("attacker".into());
        let planted = mailer::model::SendEmail {
            to: vec!["attacker@example.net".into()],
            subject: Some("not a reminder".into()),
            text: Some("x".into()),
            ..mailer::model::SendEmail::default()
        };
        let key = |hash| {
            Some(Key {
                owner: &attacker,
                key: &mark,
                hash,
            })
        };
        r.mail.submit(planted, key(&hash), "api_key:attacker").await.unwrap();
        let post = slack_notify::model::PostMessage {
            channel: Some("#licences".into()),
            level: Level::Info,
            title: "not a reminder".into(),
            text: None,
            fields: vec![],
            links: vec![],
            source: None,
            environment: None,
            thread_of: None,
            mention: None,
        };
        r.slack
            .submit(post, key("another hash"), "api_key:attacker")
            .await
            .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (1, 0));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let reminder = emails
            .iter()
            .find(|e| e.to[0] == "week@example.org")
            .expect("the owner's reminder");
        assert_eq!(reminder.tags["reminder"], "7d");
        let posts = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert!(
            posts.iter().any(|p| p.title.contains("\"Week\" expires in 5 days")),
            "{posts:?}"
        );
    }
}

/// One licence whose reminder cannot be sent (an address the mailer refuses, as old
/// data in the shared database may hold) is logged and recorded; the others still go.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_licence_does_not_stop_the_reminder_pass() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (bad, _) = r.licenses.issue(issue("Bad", 5), "t").await.unwrap();
        let (good, _) = r.licenses.issue(issue("Good", 5), "t").await.unwrap();
        let (also, _) = r.licenses.issue(issue("Also", 1), "t").await.unwrap();
        let mut conn = r.db.pool.get().await.unwrap();
        with_conn!(&mut *conn, |c| diesel::sql_query(
            "UPDATE eb_licenses SET owner_email = 'not an address' WHERE id = ?"
        )
        .bind::<diesel::sql_types::Text, _>(&bad.id)
        .execute(c)
        .await)
        .unwrap();

        assert_eq!(r.bridge.run_reminders().await.unwrap(), (2, 0));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        let mut to: Vec<&str> = emails.iter().map(|e| e.to[0].as_str()).collect();
        to.sort();
        assert_eq!(to, ["also@example.org", "good@example.org"]);
        let trail = events::for_subject(&mut conn, &format!("license:{}", bad.id))
            .await
            .unwrap();
        let failed = trail
            .iter()
            .find(|e| e.event_type == "license.reminder_failed")
            .expect("the failure is recorded");
        assert!(failed.data.contains("not an address"), "{}", failed.data);
        // The next pass tries the failed one again and sends nothing twice.
        assert_eq!(r.bridge.run_reminders().await.unwrap(), (0, 0));
        let _ = (good, also);
    }
}

/// Reminders skip the channels that are not configured: email only here, with no
/// failure recorded; with neither channel, nothing is sent, failed or marked (the
/// reminder stays due for when one is configured).
#[tokio::test(flavor = "multi_thread")]
async fn reminders_skip_unconfigured_channels_without_failing() {
    for db in TestDb::each().await {
        let r = rig_with(db, internal_ok(), true, false).await;
        r.bridge.ensure_reminder_template().await.unwrap();
        let (week, _) = r.licenses.issue(issue("Week", 5), "t").await.unwrap();
        assert_eq!(r.bridge.run_reminders().await.unwrap(), (1, 0));
        assert_eq!(r.mail.list(&EmailFilter::default()).await.unwrap().items.len(), 1);
        assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
        let mut conn = r.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", week.id))
            .await
            .unwrap();
        assert!(trail.iter().all(|e| e.event_type != "license.reminder_failed"));
    }
    for db in TestDb::each().await {
        let none = rig_with(db, internal_ok(), false, false).await;
        none.bridge.ensure_reminder_template().await.unwrap();
        let (day, _) = none.licenses.issue(issue("Day", 1), "t").await.unwrap();
        assert_eq!(none.bridge.run_reminders().await.unwrap(), (0, 0));
        let report = none.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.contains("licence reminder emails")
                && report.contains("licence reminder warnings")
                && report.contains("MAIL_TRANSPORT=dev"),
            "{report}"
        );
        let mut conn = none.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("license:{}", day.id))
            .await
            .unwrap();
        assert!(trail.iter().all(|e| e.event_type != "license.reminder_failed"));
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let marks: N = with_conn!(&mut *conn, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM eb_bridge_marks"
        )
        .get_result(c)
        .await)
        .unwrap();
        assert_eq!(marks.n, 0, "still due");
    }
}
