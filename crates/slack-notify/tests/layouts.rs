//! Each level's Block Kit JSON, snapshot tested, and `docs/slack-layouts.md` kept equal to
//! the snapshots (regenerate it with `UPDATE_LAYOUT_DOCS=1 cargo test -p slack-notify`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use slack_notify::layout::{Alert, Field, Level, Link, Mention, Rendered, render};

fn example(level: Level, mention: Option<&Mention>) -> Rendered {
    let fields = [
        Field {
            title: "Service".into(),
            value: "billing-api".into(),
        },
        Field {
            title: "Region".into(),
            value: "ap-northeast-2".into(),
        },
        Field {
            title: "Error rate".into(),
            value: "12.5% (> 5%)".into(),
        },
        Field {
            title: "Since".into(),
            value: "14:02 UTC".into(),
        },
    ];
    let links = [
        Link {
            text: "Dashboard".into(),
            url: "https://grafana.example.com/d/billing".into(),
        },
        Link {
            text: "Runbook".into(),
            url: "https://wiki.example.com/runbooks/billing-5xx".into(),
        },
    ];
    render(&Alert {
        level,
        title: "Billing API error rate above threshold",
        text: Some(
            "The *billing-api* 5xx rate crossed 5% for 10 minutes.\nRequests to `/v1/invoices` fail with <timeout> & retries.",
        ),
        fields: &fields,
        links: &links,
        source: Some("alertmanager"),
        environment: Some("production"),
        mention,
        event_id: "01a2222b-ce59-77cf-a2a1-c72b3a561cb9",
        time: Utc.with_ymd_and_hms(2026, 11, 28, 14, 12, 0).unwrap(),
    })
}

fn all() -> Vec<(Level, Rendered)> {
    Level::ALL
        .into_iter()
        .map(|l| {
            let mention = (l == Level::Critical).then_some(Mention::Here);
            (l, example(l, mention.as_ref()))
        })
        .collect()
}

#[test]
fn every_level_has_its_layout() {
    for (level, rendered) in all() {
        insta::assert_json_snapshot!(level.as_str(), rendered);
    }
}

#[test]
fn levels_differ_in_icon_and_colour_and_user_text_is_escaped() {
    let rendered = all();
    let colours: std::collections::HashSet<String> = rendered
        .iter()
        .map(|(_, r)| r.attachments[0]["color"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(colours.len(), 6);
    for (level, r) in &rendered {
        let header = r.attachments[0]["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with(level.icon()), "{header}");
        let json = serde_json::to_string(r).unwrap();
        assert!(json.contains("&lt;timeout&gt; &amp; retries"), "user text escaped");
        assert!(!json.contains("<timeout>"));
    }
    let critical = &rendered[5].1;
    assert!(
        critical.text.starts_with("<!here> :rotating_light: [CRITICAL]"),
        "{}",
        critical.text
    );
}

#[test]
fn oversized_input_is_cut_within_slack_limits() {
    let long = "x".repeat(10_000);
    let fields: Vec<Field> = (0..25)
        .map(|i| Field {
            title: format!("k{i}"),
            value: long.clone(),
        })
        .collect();
    let links: Vec<Link> = (0..9)
        .map(|i| Link {
            text: long.clone(),
            url: format!("https://e.example/{i}"),
        })
        .collect();
    let r = render(&Alert {
        level: Level::Error,
        title: &long,
        text: Some(&long),
        fields: &fields,
        links: &links,
        source: Some(&long),
        environment: None,
        mention: None,
        event_id: "id",
        time: Utc::now(),
    });
    let blocks = r.attachments[0]["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let count = |v: &serde_json::Value| v.as_str().unwrap().chars().count();
    assert!(count(&blocks[0]["text"]["text"]) <= 150);
    assert!(count(&blocks[1]["text"]["text"]) <= 3000);
    let sections_with_fields: Vec<_> = blocks.iter().filter(|b| b.get("fields").is_some()).collect();
    assert_eq!(sections_with_fields.len(), 2, "at most 20 fields, 10 per section");
    for s in sections_with_fields {
        for f in s["fields"].as_array().unwrap() {
            assert!(count(&f["text"]) <= 2000);
        }
    }
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(actions["elements"].as_array().unwrap().len(), 5);
    assert!(count(&actions["elements"][0]["text"]["text"]) <= 75);
}

#[test]
fn the_layout_document_shows_the_snapshots() {
    let mut doc = String::from(
        "# Slack layouts\n\n\
         One layout per level, as `POST /api/v1/slack/preview` returns it and\n\
         `chat.postMessage` receives it: a plain `text` fallback for notifications and one\n\
         attachment with the level's colour bar and the blocks. Paste a `attachments` value\n\
         into [Block Kit Builder](https://app.slack.com/block-kit-builder) (attachments mode)\n\
         to see it. These are the snapshot tests' own outputs\n\
         (`crates/slack-notify/tests/snapshots`); a test keeps this file equal to them.\n",
    );
    for (level, r) in all() {
        doc.push_str(&format!(
            "\n## `{}` {} `{}`\n\n```json\n{}\n```\n",
            level.as_str(),
            level.icon(),
            level.colour(),
            serde_json::to_string_pretty(&r).unwrap()
        ));
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/slack-layouts.md");
    if std::env::var("UPDATE_LAYOUT_DOCS").is_ok() {
        std::fs::write(path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        current == doc,
        "docs/slack-layouts.md is stale: run UPDATE_LAYOUT_DOCS=1 cargo test -p slack-notify"
    );
}
