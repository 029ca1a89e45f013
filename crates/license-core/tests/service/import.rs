//! `import`: licences from the original service, with its keys, in JSON Lines and CSV.

use std::path::Path;

use super::*;

const OLD_KEY: &str = "lic_7f3a9c2e41b84d5e";
const OLD_KEY_2: &str = "ACME-2019-0042-PRO";

fn jsonl() -> String {
    [
        format!(
            r#"{{"key": "{OLD_KEY}", "product": "client", "name": "Acme Corp", "owner_email": "it@acme.example", "expires_at": "2099-01-31 23:59:59", "max_machines": 3, "entitlements": ["sso", "export"], "metadata": {{"crm": 42}}, "created_at": "2019-04-01T10:00:00Z"}}"#
        ),
        String::new(),
        format!(
            r#"{{"key": "{OLD_KEY_2}", "product": "platform", "name": "Beta Ltd", "owner_email": "ops@beta.example", "status": "suspended", "expires_at": null, "entitlements": "[\"audit\"]", "metadata": "{{\"plan\": \"pro\"}}"}}"#
        ),
    ]
    .join("\n")
}

fn csv() -> String {
    format!(
        "key,product,name,owner_email,status,expires_at,max_machines,entitlements,metadata,created_at\n\
         {OLD_KEY},client,\"Acme, Corp\",it@acme.example,,2099-01-31T23:59:59Z,3,sso; export,\"{{\"\"crm\"\": 42}}\",2019-04-01 10:00:00\n\
         {OLD_KEY_2},platform,Beta Ltd,ops@beta.example,revoked,,,\"[\"\"audit\"\"]\",,\n"
    )
}

fn parse(text: &str, format: ImportFormat) -> ImportFile {
    ImportFile::parse(text, format).unwrap_or_else(|e| panic!("{e:?}"))
}

fn request(key: &str) -> ValidateRequest {
    ValidateRequest {
        key: key.into(),
        fingerprint: None,
        product: None,
        entitlements: vec![],
        nonce: None,
    }
}

async fn all(svc: &LicenseService) -> Vec<License> {
    let filter = LicenseFilter {
        limit: Some(500),
        ..Default::default()
    };
    svc.list(&filter).await.unwrap().items
}

async fn imported_events(db: &TestDb) -> Vec<shared_db::events::Event> {
    let mut conn = db.pool.get().await.unwrap();
    let filter = events::EventFilter {
        event_type: Some("license.imported".into()),
        limit: 500,
        ..Default::default()
    };
    events::list(&mut conn, &filter).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn both_formats_import_and_old_keys_validate_as_sent() {
    for (format, text) in [(ImportFormat::JsonLines, jsonl()), (ImportFormat::Csv, csv())] {
        for (db, svc) in services().await {
            let b = db.backend();
            let report = svc.import(&parse(&text, format), false).await.unwrap();
            assert_eq!(report.summary(), "imported 2, unchanged 0", "{b} {format:?}");

            let v = svc.validate(&request(OLD_KEY)).await.unwrap();
            assert_eq!(v.code, ValidationCode::Valid, "{b} {format:?}: {v:?}");
            let lic = v.license.unwrap();
            assert_eq!(lic.product, Product::Client);
            assert_eq!(lic.entitlements, ["export", "sso"]);
            assert_eq!(lic.metadata["crm"], 42);
            assert_eq!(lic.max_machines, Some(3));
            assert_eq!(lic.key_prefix, "lic_7", "five characters, at most a quarter of the key");
            assert_eq!(
                lic.expires_at.unwrap().to_rfc3339(),
                "2099-01-31T23:59:59+00:00",
                "a MySQL time is UTC"
            );
            assert_eq!(lic.created_at.to_rfc3339(), "2019-04-01T10:00:00+00:00");
            if format == ImportFormat::Csv {
                assert_eq!(lic.name, "Acme, Corp", "quoted commas");
            }

            let beta = svc.validate(&request(OLD_KEY_2)).await.unwrap();
            let expected = match format {
                ImportFormat::JsonLines => ValidationCode::Suspended,
                ImportFormat::Csv => ValidationCode::Revoked,
            };
            assert_eq!(beta.code, expected, "{b}");
            let beta = beta.license.unwrap();
            assert_eq!(beta.entitlements, ["audit"]);
            assert_eq!(beta.expires_at, None);

            // One `license.imported` event each, by `cli`, never with the key.
            let events = imported_events(&db).await;
            assert_eq!(events.len(), 2, "{b}");
            for e in &events {
                assert_eq!(e.actor.as_deref(), Some("cli"));
                assert!(!e.data.contains(OLD_KEY) && !e.data.contains(OLD_KEY_2), "{}", e.data);
            }
            let acme = events
                .iter()
                .find(|e| e.subject.as_deref() == Some(&format!("license:{}", lic.id)))
                .unwrap();
            let data: serde_json::Value = serde_json::from_str(&acme.data).unwrap();
            assert_eq!(
                data,
                serde_json::json!({"license_id": lic.id, "product": "client", "status": "active", "policy_id": null})
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn old_keys_work_in_every_holder_call() {
    for (db, svc) in services().await {
        let b = db.backend();
        svc.import(&parse(&jsonl(), ImportFormat::JsonLines), false)
            .await
            .unwrap();
        let machine = MachineRequest {
            key: OLD_KEY.into(),
            fingerprint: "fp-old".into(),
            nonce: None,
        };
        let activated = svc
            .activate(&ActivateRequest {
                key: OLD_KEY.into(),
                fingerprint: "fp-old".into(),
                name: None,
                platform: None,
                hostname: None,
                nonce: None,
            })
            .await
            .unwrap();
        assert_eq!(activated.machine.fingerprint, "fp-old", "{b}");
        let mut bound = request(OLD_KEY);
        bound.fingerprint = Some("fp-old".into());
        assert_eq!(svc.validate(&bound).await.unwrap().code, ValidationCode::Valid);
        svc.heartbeat(&machine).await.unwrap();
        let cert = svc
            .checkout(&CheckoutRequest {
                key: OLD_KEY.into(),
                fingerprint: Some("fp-old".into()),
                ttl: None,
                nonce: None,
            })
            .await
            .unwrap();
        assert_eq!(cert.payload.product, "client");
        svc.deactivate(&machine).await.unwrap();
        assert!(matches!(
            svc.heartbeat(&machine).await,
            Err(LicenseError::MachineNotFound)
        ));
        // Exactly as sent: another spelling is another key.
        let v = svc.validate(&request(&OLD_KEY.to_uppercase())).await.unwrap();
        assert_eq!(v.code, ValidationCode::NotFound, "{b}");
        // A suspended old licence answers as a suspended new one does.
        let refused = svc
            .checkout(&CheckoutRequest {
                key: OLD_KEY_2.into(),
                fingerprint: None,
                ttl: None,
                nonce: None,
            })
            .await;
        assert!(matches!(
            refused,
            Err(LicenseError::NotValid {
                code: ValidationCode::Suspended,
                ..
            })
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_old_style_keys_are_not_found_and_garbage_stays_malformed() {
    for (db, svc) in services().await {
        let b = db.backend();
        let v = svc.validate(&request("lic_never_issued_0000")).await.unwrap();
        assert_eq!(
            (v.code, v.detail.as_str()),
            (ValidationCode::NotFound, "no licence has this key")
        );
        for garbage in ["", "short", "bell\u{7}in-the-key", &"x".repeat(201)] {
            let v = svc.validate(&request(garbage)).await.unwrap();
            assert_eq!(v.code, ValidationCode::NotFound, "{b}");
            assert!(v.detail.contains("malformed"), "{b}: {}", v.detail);
        }
        let machine = MachineRequest {
            key: "lic_never_issued_0000".into(),
            fingerprint: "fp".into(),
            nonce: None,
        };
        match svc.deactivate(&machine).await {
            Err(LicenseError::KeyInvalid(detail)) => assert_eq!(detail, "no licence has this key"),
            other => panic!("{b}: {other:?}"),
        }
        let short = MachineRequest {
            key: "typo".into(),
            fingerprint: "fp".into(),
            nonce: None,
        };
        match svc.heartbeat(&short).await {
            Err(LicenseError::KeyInvalid(detail)) => assert!(detail.contains("35 symbols"), "{detail}"),
            other => panic!("{b}: {other:?}"),
        }
        // A mistyped key of ours is looked up, and the answer still hints at the typo.
        let (_, key) = svc.issue(issue(Product::Client), "t").await.unwrap();
        let mut typo: Vec<u8> = key.as_str().bytes().collect();
        typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
        let v = svc
            .validate(&request(std::str::from_utf8(&typo).unwrap()))
            .await
            .unwrap();
        assert_eq!(v.code, ValidationCode::NotFound);
        assert!(v.detail.contains("typos"), "{}", v.detail);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn importing_again_changes_nothing_and_reports_what_differs() {
    for (db, svc) in services().await {
        let b = db.backend();
        let file = parse(&jsonl(), ImportFormat::JsonLines);
        svc.import(&file, false).await.unwrap();
        let before = all(&svc).await;
        let again = svc.import(&file, false).await.unwrap();
        assert_eq!(again.summary(), "imported 0, unchanged 2", "{b}");
        assert_eq!(again.unchanged, [1, 3], "line numbers of the file");
        // The CSV file holds the same keys with other fields: skipped, and why.
        let csv_again = svc.import(&parse(&csv(), ImportFormat::Csv), false).await.unwrap();
        assert_eq!(
            csv_again.differs,
            [(2, vec!["name"]), (3, vec!["status", "metadata"])],
            "{b}"
        );

        // A changed licence is skipped, never overwritten.
        let acme = before.iter().find(|l| l.name == "Acme Corp").unwrap();
        svc.suspend(&acme.id, "test").await.unwrap();
        let changed = svc.import(&file, false).await.unwrap();
        assert_eq!(
            changed.summary(),
            "imported 0, unchanged 1, skipped 1 (exists, differs)"
        );
        assert_eq!(changed.differs, [(1, vec!["status"])]);
        assert_eq!(svc.get(&acme.id).await.unwrap().status, LicenseStatus::Suspended);
        assert_eq!(all(&svc).await.len(), 2, "{b}");
        assert_eq!(imported_events(&db).await.len(), 2, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_line_imports_nothing_and_names_line_and_field() {
    let mut lines: Vec<String> = jsonl().lines().map(str::to_owned).collect();
    lines.push(String::new());
    lines.push(String::new());
    lines.push(String::new());
    lines.push(r#"{"key": "lic_bad_time_0001", "product": "client", "name": "C", "owner_email": "c@c.example", "expires_at": "next tuesday"}"#.into());
    let text = lines.join("\n");
    let errors = ImportFile::parse(&text, ImportFormat::JsonLines).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let shown = errors[0].to_string();
    assert!(shown.starts_with("line 7: expires_at: "), "{shown}");
    assert!(shown.contains("not an RFC 3339 time"), "{shown}");
    // So nothing was imported: the service never saw a file.
    for (db, svc) in services().await {
        assert!(all(&svc).await.is_empty(), "{}", db.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_writes_nothing() {
    for (db, svc) in services().await {
        let b = db.backend();
        let file = parse(&jsonl(), ImportFormat::JsonLines);
        let dry = svc.import(&file, true).await.unwrap();
        assert_eq!(dry.summary(), "imported 2, unchanged 0 (dry run)", "{b}");
        assert!(dry.imported.iter().all(|(_, id)| id.is_none()));
        assert!(all(&svc).await.is_empty(), "{b}");
        assert!(imported_events(&db).await.is_empty(), "{b}");
        assert_eq!(
            svc.validate(&request(OLD_KEY)).await.unwrap().code,
            ValidationCode::NotFound
        );
        svc.import(&file, false).await.unwrap();
        let dry = svc.import(&file, true).await.unwrap();
        assert_eq!(dry.summary(), "imported 0, unchanged 2 (dry run)", "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_digested_under_an_earlier_secret_are_still_found() {
    for (db, svc) in services().await {
        let file = parse(&jsonl(), ImportFormat::JsonLines);
        svc.import(&file, false).await.unwrap();
        let rotated = LicenseService::new(
            db.pool.clone(),
            KeyRing::new(b"license-test-secret-rotated-000000", &[SECRET]),
            None,
        )
        .unwrap();
        assert_eq!(
            rotated.import(&file, false).await.unwrap().summary(),
            "imported 0, unchanged 2",
            "{}",
            db.backend()
        );
        assert_eq!(
            rotated.validate(&request(OLD_KEY)).await.unwrap().code,
            ValidationCode::Valid
        );
    }
}

#[test]
fn the_format_is_told_by_extension_or_first_character() {
    assert_eq!(ImportFormat::detect(Path::new("a.CSV"), "{"), ImportFormat::Csv);
    assert_eq!(
        ImportFormat::detect(Path::new("a.jsonl"), "key"),
        ImportFormat::JsonLines
    );
    assert_eq!(ImportFormat::detect(Path::new("a.json"), ""), ImportFormat::JsonLines);
    assert_eq!(
        ImportFormat::detect(Path::new("export"), "\u{feff}\n  {\"key\": 1}"),
        ImportFormat::JsonLines
    );
    assert_eq!(
        ImportFormat::detect(Path::new("export.txt"), "key,product"),
        ImportFormat::Csv
    );
}

#[test]
fn duplicate_keys_and_unknown_fields_are_refused_by_line() {
    let mut text = csv();
    text.push_str(&format!("{OLD_KEY},client,Again,a@a.example,,,,,,\n"));
    let errors = ImportFile::parse(&text, ImportFormat::Csv).unwrap_err();
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["line 4: key: the same key as line 2"]
    );

    let typo = "key,product,name,owner_emial\nlic_1234567890,client,A,a@a.example\n";
    let errors = ImportFile::parse(typo, ImportFormat::Csv).unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .starts_with("line 1: unknown column `owner_emial`"),
        "{errors:?}"
    );
    let typo = r#"{"key": "lic_1234567890", "product": "client", "name": "A", "owner_email": "a@a.example", "expire_at": "2030-01-01T00:00:00Z"}"#;
    let errors = ImportFile::parse(typo, ImportFormat::JsonLines).unwrap_err();
    assert!(
        errors[0].to_string().starts_with("line 1: unknown field `expire_at`"),
        "{errors:?}"
    );
}

#[test]
fn every_field_error_names_its_line_and_field() {
    let text = "key,product,name,owner_email,status,max_machines,entitlements,metadata\n\
                short,desktop,,not-an-email,expired,0,bad entitlement!,[1]\n";
    let errors = ImportFile::parse(text, ImportFormat::Csv).unwrap_err();
    let fields: Vec<(usize, Option<&str>)> = errors.iter().map(|e| (e.line, e.field.as_deref())).collect();
    assert_eq!(
        fields,
        [
            (2, Some("key")),
            (2, Some("product")),
            (2, Some("name")),
            (2, Some("owner_email")),
            (2, Some("status")),
            (2, Some("max_machines")),
            (2, Some("entitlements")),
            (2, Some("metadata")),
        ],
        "{errors:?}"
    );
    assert_eq!(errors[2].message, "required");
    let ragged = "key,product,name,owner_email\nlic_1234567890,client,A\n";
    let errors = ImportFile::parse(ragged, ImportFormat::Csv).unwrap_err();
    assert_eq!(errors[0].line, 2, "{errors:?}");
    let not_json = "{\"key\": \"lic_1234567890\"\n";
    let errors = ImportFile::parse(not_json, ImportFormat::JsonLines).unwrap_err();
    assert!(
        errors[0].to_string().starts_with("line 1: not a JSON object"),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_line_may_name_a_policy() {
    for (db, svc) in services().await {
        let b = db.backend();
        let policy = svc
            .create_policy(
                serde_json::from_value(serde_json::json!({
                    "product": "client", "name": "Legacy", "max_machines": 4, "grace_period": "14d",
                }))
                .unwrap(),
                "t",
            )
            .await
            .unwrap();
        let line = |key: &str, policy_id: &str| {
            format!(
                r#"{{"key": "{key}", "product": "client", "name": "Old", "owner_email": "a@b.example", "policy_id": "{policy_id}"}}"#
            )
        };
        let file = parse(&line("lic_with_policy_0001", &policy.id), ImportFormat::JsonLines);
        svc.import(&file, false).await.unwrap();
        let v = svc.validate(&request("lic_with_policy_0001")).await.unwrap();
        let lic = v.license.unwrap();
        assert_eq!(
            (lic.policy_id.as_deref(), lic.max_machines, lic.grace_period.as_deref()),
            (Some(policy.id.as_str()), Some(4), Some("14d")),
            "{b}"
        );
        // A policy that does not exist names its line; nothing is imported.
        let file = parse(
            &format!(
                "{}\n{}",
                line("lic_with_policy_0002", &policy.id),
                line("lic_with_policy_0003", "nope")
            ),
            ImportFormat::JsonLines,
        );
        match svc.import(&file, false).await {
            Err(LicenseError::Invalid {
                field: "policy_id",
                message,
            }) => assert!(message.starts_with("line 2:"), "{message}"),
            other => panic!("{b}: {other:?}"),
        }
        assert_eq!(
            svc.validate(&request("lic_with_policy_0002")).await.unwrap().code,
            ValidationCode::NotFound
        );
    }
}
