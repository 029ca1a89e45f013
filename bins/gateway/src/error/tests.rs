//! The problem documents' tests.

mod problems {
    #![allow(clippy::unwrap_used)]
    use super::super::*;
    use shared_db::DbError;

    #[test]
    fn an_unreachable_database_is_503_not_500() {
        let e: ApiError = DbError::Unavailable("connection refused".into()).into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "service_unavailable");
    }

    /// Problem codes are lower snake_case, and so is every `type` URN built from them.
    fn is_code(code: &str) -> bool {
        code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn licence_holder_problems_use_snake_case_codes() {
        use license_core::LicenseError;
        use license_core::model::ValidationCode;
        for code in ValidationCode::ALL {
            let e: ApiError = LicenseError::NotValid {
                code,
                detail: "x".into(),
            }
            .into();
            assert!(is_code(e.code()), "{}", e.code());
            assert_eq!(
                e.problem().problem_type,
                format!("urn:event-bridge:problem:{}", e.code())
            );
            // The validation result says the same thing in the same spelling.
            assert_eq!(serde_json::to_value(code).unwrap(), e.code());
        }
        let e: ApiError = LicenseError::NotValid {
            code: ValidationCode::TooManyMachines,
            detail: "x".into(),
        }
        .into();
        assert_eq!(e.code(), "too_many_machines");
    }

    /// Every code the gateway can send, read from the source: the literal codes handed to
    /// `ApiError` constructors, `code: "..."` fields of domain errors, the code constants
    /// and the bare-status table.
    #[test]
    fn every_problem_code_in_the_source_is_snake_case() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let constructor = regex::Regex::new(
            r#"(?:ApiError|Self)::(?:new|bad_request|unauthorized|not_found|unprocessable|backend_unavailable)\(\s*(?:StatusCode::\w+,\s*)?"([^"]*)""#,
        )
        .unwrap();
        let field = regex::Regex::new(r#"\bcode: "([^"]*)""#).unwrap();
        let constant =
            regex::Regex::new(r#"/// The problem code [^\n]*\npub const [A-Z_]+: &str = "([^"]*)";"#).unwrap();
        let table = regex::Regex::new(r#"=> "([^"]*)",\s*$"#).unwrap();
        let mut files = Vec::new();
        let mut dirs = vec![root.join("bins/gateway/src")];
        for entry in std::fs::read_dir(root.join("crates")).unwrap() {
            dirs.push(entry.unwrap().path().join("src"));
        }
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                    files.push(path);
                }
            }
        }
        let mut codes = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Codes in tests are what the tests expect, not what the gateway sends.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for re in [&constructor, &field] {
                codes.extend(re.captures_iter(text).map(|c| (file.clone(), c[1].to_owned())));
            }
        }
        let this = std::fs::read_to_string(root.join("crates/web-kit/src/problem.rs")).unwrap();
        let from_status = this.split("fn from_status").nth(1).unwrap().split("};").next().unwrap();
        codes.extend(
            from_status
                .lines()
                .filter_map(|l| table.captures(l))
                .map(|c| (root.join("crates/web-kit/src/problem.rs"), c[1].to_owned())),
        );
        codes.extend(
            constant
                .captures_iter(&this)
                .map(|c| (root.join("crates/web-kit/src/problem.rs"), c[1].to_owned())),
        );
        assert!(codes.len() > 80, "the scan found only {} codes", codes.len());
        for (file, code) in &codes {
            assert!(
                is_code(code),
                "{}: problem code `{code}` is not lower snake_case",
                file.display()
            );
        }
        for known in [
            "insufficient_scope",
            "malformed_json",
            "not_found",
            "busy",
            "machine_exists",
        ] {
            assert!(codes.iter().any(|(_, c)| c == known), "the scan missed `{known}`");
        }
    }
}
