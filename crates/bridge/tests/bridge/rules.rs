//! Rules: checked, applied once, failures and skipped channels recorded.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn rules_turn_events_into_slack_and_email_once() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        licence_issued_template(&r, "Issued by {{ event.actor }}").await;
        let slack = SlackAction {
            channel: Some("#sales".into()),
            ..to_slack(
                Level::Success,
                "New {{ data.product }} licence",
                Some("for {{ data.owner }}"),
            )
        };
        let mut rule = slack_rule("new client licences", "license.*", slack);
        rule.filter = BTreeMap::from([("product".into(), json!("client"))]);
        rule.actions.email = Some(EmailAction {
            to: "{{ data.owner }}".into(),
            template: "licence-issued".into(),
        });
        let rule = r.bridge.create_rule(rule, "t").await.unwrap();
        assert_eq!(
            r.bridge.dispatch().await.unwrap(),
            0,
            "no rule listens to what happened so far"
        );
        for (event_type, actor, data) in [
            (
                "license.issued",
                "api_key:k",
                json!({"product": "client", "owner": "ann@example.org"}),
            ),
            (
                "license.issued",
                "api_key:k",
                json!({"product": "platform", "owner": "bob@example.org"}),
            ),
            ("api_key.created", "api_key:k", json!({"product": "client"})),
            // What the bridge itself does never triggers rules.
            (
                "license.issued",
                "bridge:rule:x",
                json!({"product": "client", "owner": "loop@example.org"}),
            ),
        ] {
            record(&r, event_type, actor, data).await;
        }

        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        assert_eq!(r.bridge.dispatch().await.unwrap(), 0, "a rerun queues nothing again");
        r.worker.drain().await.unwrap();
        // A rerun of the rule's job sends nothing twice (idempotency keys).
        let mut conn = r.db.pool.get().await.unwrap();
        let job = shared_db::jobs::NewJob::new(
            RULE_QUEUE,
            &json!({"target": rule.id, "event_id": latest_issued(&r).await}),
        )
        .unwrap();
        shared_db::jobs::enqueue(&mut conn, job).await.unwrap();
        r.worker.drain().await.unwrap();

        let posted = r.slack.list(&MessageFilter::default()).await.unwrap().items;
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert_eq!(posted[0].title, "New client licence");
        assert_eq!(posted[0].channel, "#sales");
        assert_eq!(posted[0].request.text.as_deref(), Some("for ann@example.org"));
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].to, vec!["ann@example.org".to_owned()]);
        assert_eq!(emails[0].subject, "Licence for client");
        assert_eq!(emails[0].tags["rule"], rule.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_are_checked() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let base = slack_rule("x", "license.issued", to_slack(Level::Info, "t", None));
    let field = |e: BridgeError| match e {
        BridgeError::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    };
    // Event types a rule may not listen to, or that are malformed.
    for event_type in ["slack.*", "*", "License Issued"] {
        let mut rule = base.clone();
        rule.event_type = event_type.into();
        let refused = r.bridge.create_rule(rule, "t").await.unwrap_err();
        assert_eq!(field(refused), "event_type", "{event_type}");
    }
    let mut nothing = base.clone();
    nothing.actions = Actions::default();
    assert_eq!(field(r.bridge.create_rule(nothing, "t").await.unwrap_err()), "actions");
    let mut broken = base.clone();
    broken.actions.slack.as_mut().unwrap().title = "{% if %}".into();
    assert_eq!(
        field(r.bridge.create_rule(broken, "t").await.unwrap_err()),
        "actions.slack.title"
    );
    let rule = r.bridge.create_rule(base, "t").await.unwrap();
    let off = r
        .bridge
        .update_rule(
            &rule.id,
            RulePatch {
                enabled: Some(false),
                ..RulePatch::default()
            },
            "t",
        )
        .await
        .unwrap();
    assert!(!off.enabled);
    r.bridge.delete_rule(&rule.id, "t").await.unwrap();
    assert!(matches!(r.bridge.rule(&rule.id).await, Err(BridgeError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_that_cannot_render_is_recorded_as_failed() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let slack = to_slack(Level::Warning, "Suspended: {{ data.missing }}", None);
    let rule = slack_rule("needs a field the event lacks", "license.suspended", slack);
    let rule = r.bridge.create_rule(rule, "t").await.unwrap();
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.suspended", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
    r.worker.drain().await.unwrap();
    let mut conn = r.db.pool.get().await.unwrap();
    let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
        .await
        .unwrap();
    let failed = trail.iter().find(|e| e.event_type == "rule.failed").unwrap();
    assert!(failed.data.contains("data.missing"), "{}", failed.data);
    assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
}

/// A rule title with nested `range(100000)` × `range(2000)` loops stops at the
/// rendering bound and is recorded as `rule.failed` with a clear reason, rather than
/// holding a worker for seconds or minutes. (The timeout only guards against a hang.)
#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_rule_template_is_recorded_as_failed() {
    let r = rig(TestDb::sqlite().await, internal_ok()).await;
    let mut rules = Vec::new();
    for (name, title, text) in [
        (
            "loops",
            "{% for i in range(100000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}Suspended",
            None,
        ),
        ("bomb", "Suspended", Some(r#"{{ "x" * 20000000 }}"#)),
    ] {
        let rule = slack_rule(name, "license.suspended", to_slack(Level::Warning, title, text));
        rules.push(r.bridge.create_rule(rule, "t").await.unwrap());
    }
    r.bridge.dispatch().await.unwrap();
    record(&r, "license.suspended", "api_key:k", json!({})).await;
    assert_eq!(r.bridge.dispatch().await.unwrap(), 2);
    tokio::time::timeout(Duration::from_secs(300), r.worker.drain())
        .await
        .expect("rule rendering hung")
        .unwrap();
    let mut conn = r.db.pool.get().await.unwrap();
    for (rule, bound) in rules.iter().zip(["steps", "bytes"]) {
        let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
            .await
            .unwrap();
        let failed = trail.iter().find(|e| e.event_type == "rule.failed").expect("recorded");
        assert!(failed.data.contains(bound), "{}: {}", rule.name, failed.data);
    }
    assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
}

/// A rule whose channel is not configured is skipped, recorded once per event as
/// `rule.skipped` naming what to set, never retried; its configured channel still works.
/// The start-up report names the rule and the reminders that skip the channel.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_an_unconfigured_channel_is_skipped_and_reported() {
    for db in TestDb::each().await {
        let r = rig_with(db, internal_ok(), true, false).await;
        let report = r.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.starts_with("licence reminder warnings skip Slack"),
            "no rule yet: {report}"
        );
        licence_issued_template(&r, "Issued").await;
        let slack = SlackAction {
            channel: Some("#sales".into()),
            ..to_slack(Level::Info, "New licence", None)
        };
        let mut rule = slack_rule("tell sales", "license.issued", slack);
        rule.actions.email = Some(EmailAction {
            to: "sales@example.org".into(),
            template: "licence-issued".into(),
        });
        let rule = r.bridge.create_rule(rule, "t").await.unwrap();
        let report = r.bridge.skipped_channels().await.unwrap().unwrap();
        assert!(
            report.contains("rule \"tell sales\"")
                && report.contains("licence reminder warnings")
                && report.contains("SLACK_BOT_TOKEN")
                && report.contains("SLACK_TRANSPORT=dev")
                && !report.contains("email"),
            "{report}"
        );

        record(&r, "license.issued", "api_key:k", json!({"product": "client"})).await;
        assert_eq!(r.bridge.dispatch().await.unwrap(), 1);
        r.worker.drain().await.unwrap();
        let mut conn = r.db.pool.get().await.unwrap();
        let trail = events::for_subject(&mut conn, &format!("rule:{}", rule.id))
            .await
            .unwrap();
        let kinds: Vec<&str> = trail.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["rule.created", "rule.skipped"]);
        let data: Value = serde_json::from_str(&trail[1].data).unwrap();
        assert_eq!(data["skipped"][0]["channel"], "slack");
        assert!(
            data["skipped"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("SLACK_BOT_TOKEN")
        );
        let jobs = shared_db::jobs::counts(&mut conn, RULE_QUEUE).await.unwrap();
        assert!(jobs.is_empty(), "done, not retried or failed: {jobs:?}");
        assert!(r.slack.list(&MessageFilter::default()).await.unwrap().items.is_empty());
        let emails = r.mail.list(&EmailFilter::default()).await.unwrap().items;
        assert_eq!(emails.len(), 1, "the configured channel still delivers");
    }
}

/// Rules, webhooks and delivery logs come in pages, newest first: `limit` 1 to 500
/// (default 100), a cursor continues; anything else is refused naming the parameter.
#[tokio::test(flavor = "multi_thread")]
async fn lists_come_in_pages_newest_first() {
    for db in TestDb::each().await {
        let r = rig(db, internal_ok()).await;
        let mut made = Vec::new();
        for i in 0..3 {
            let rule = slack_rule(&format!("rule {i}"), "license.issued", to_slack(Level::Info, "t", None));
            made.push(r.bridge.create_rule(rule, "t").await.unwrap().id);
        }
        made.reverse();
        let all = r.bridge.rules(&PageQuery::default()).await.unwrap();
        assert_eq!(all.items.iter().map(|x| x.id.clone()).collect::<Vec<_>>(), made);
        assert!(all.next_cursor.is_none());
        let first = r.bridge.rules(&page(2)).await.unwrap();
        let rest = r
            .bridge
            .rules(&PageQuery {
                limit: Some(2),
                cursor: first.next_cursor.clone(),
            })
            .await
            .unwrap();
        let seen: Vec<String> = first.items.iter().chain(&rest.items).map(|x| x.id.clone()).collect();
        assert_eq!((seen, rest.next_cursor), (made, None));

        let hook = r
            .bridge
            .create_webhook(
                NewWebhook {
                    url: "http://127.0.0.1:9/hook".into(),
                    event_types: vec!["license.*".into()],
                    description: None,
                },
                "t",
            )
            .await
            .unwrap();
        assert_eq!(r.bridge.webhooks(&page(500)).await.unwrap().items.len(), 1);
        for (limit, cursor, field) in [
            (Some(0), None, "limit"),
            (Some(501), None, "limit"),
            (None, Some("%%%"), "cursor"),
        ] {
            let q = PageQuery {
                limit,
                cursor: cursor.map(Into::into),
            };
            let refused = [
                r.bridge.rules(&q).await.err(),
                r.bridge.webhooks(&q).await.err(),
                r.bridge.deliveries(&hook.webhook.id, &q).await.err(),
            ];
            for e in refused {
                match e {
                    Some(BridgeError::Paging(e)) => assert_eq!(e.field(), field),
                    other => panic!("{q:?}: {other:?}"),
                }
            }
        }
    }
}
