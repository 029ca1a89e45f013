//! Licences brought over from the original service (`gateway import licenses FILE`): the
//! file (JSON Lines, or CSV with a header row), each line checked as issuing checks, and
//! what an import did.
//!
//! Every line is checked before anything is written; the errors name the line and the
//! field. Line numbers are the file's own (a CSV header is line 1).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, SubsecRound};
use serde_json::Value;

use super::{LicenseStatus, Product, check_email, check_entitlements, check_max_machines, check_metadata, check_name};
use crate::key::PresentedKey;

/// The fields a line may have.
pub const IMPORT_FIELDS: [&str; 11] = [
    "key",
    "product",
    "name",
    "owner_email",
    "status",
    "expires_at",
    "max_machines",
    "entitlements",
    "metadata",
    "created_at",
    "policy_id",
];

/// How an import file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header row.
    Csv,
}

impl ImportFormat {
    /// The format of `file`: by its extension (`.csv`; `.jsonl` or `.json`), else JSON
    /// Lines when its first non-blank character is `{`, else CSV.
    pub fn detect(file: &Path, text: &str) -> Self {
        match file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => ImportFormat::Csv,
            Some("jsonl" | "json" | "ndjson") => ImportFormat::JsonLines,
            _ if text.trim_start_matches('\u{feff}').trim_start().starts_with('{') => ImportFormat::JsonLines,
            _ => ImportFormat::Csv,
        }
    }
}

/// One refused line (or the file as a whole when `line` is 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line, counting from 1.
    pub line: usize,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: {field}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

fn line_error(line: usize, field: Option<&str>, message: impl Into<String>) -> LineError {
    LineError {
        line,
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

/// A licence to import, checked. `Debug` shows only the key's prefix.
#[derive(Debug, Clone)]
pub(crate) struct ImportRecord {
    pub(crate) line: usize,
    pub(crate) key: PresentedKey,
    pub(crate) product: Product,
    pub(crate) name: String,
    pub(crate) owner_email: String,
    pub(crate) status: LicenseStatus,
    pub(crate) expires_at: Option<NaiveDateTime>,
    pub(crate) max_machines: Option<i32>,
    /// The stored form (a sorted JSON array).
    pub(crate) entitlements: String,
    /// The stored form (a JSON object).
    pub(crate) metadata: String,
    pub(crate) created_at: Option<NaiveDateTime>,
    /// The policy the licence takes its other terms from (checked at import).
    pub(crate) policy_id: Option<String>,
}

/// An import file whose every line checked out, with no key twice.
#[derive(Debug, Clone)]
pub struct ImportFile {
    pub(crate) records: Vec<ImportRecord>,
}

impl ImportFile {
    /// Reads and checks every line of `text`; on any error nothing is returned but every
    /// error found, each naming its line and field.
    pub fn parse(text: &str, format: ImportFormat) -> Result<Self, Vec<LineError>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = match format {
            ImportFormat::JsonLines => json_lines(text)?,
            ImportFormat::Csv => csv_lines(text)?,
        };
        let mut errors = Vec::new();
        let mut records = Vec::with_capacity(lines.len());
        for (line, fields) in lines {
            match record(line, fields) {
                Ok(r) => records.push(r),
                Err(mut e) => errors.append(&mut e),
            }
        }
        let mut first_line: HashMap<&str, usize> = HashMap::new();
        for r in &records {
            if let Some(earlier) = first_line.insert(r.key.as_str(), r.line) {
                first_line.insert(r.key.as_str(), earlier);
                errors.push(line_error(
                    r.line,
                    Some("key"),
                    format!("the same key as line {earlier}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self { records })
        } else {
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }

    /// How many licences the file holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the file holds no licence.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The lines imported, with their new licences' ids (none in a dry run).
    pub imported: Vec<(usize, Option<String>)>,
    /// The lines whose key a licence already has, with the same fields: skipped.
    pub unchanged: Vec<usize>,
    /// The lines whose key a licence already has with other fields: skipped too (never
    /// overwritten), with the fields that differ.
    pub differs: Vec<(usize, Vec<&'static str>)>,
}

impl ImportReport {
    /// One line of totals, such as `imported 120, unchanged 3 (dry run)`.
    pub fn summary(&self) -> String {
        let mut s = format!("imported {}, unchanged {}", self.imported.len(), self.unchanged.len());
        if !self.differs.is_empty() {
            s.push_str(&format!(", skipped {} (exists, differs)", self.differs.len()));
        }
        if self.dry_run {
            s.push_str(" (dry run)");
        }
        s
    }
}

/// One field as the file gives it.
enum Cell {
    Json(Value),
    Text(String),
}

type Fields = BTreeMap<String, Cell>;

fn json_lines(text: &str) -> Result<Vec<(usize, Fields)>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => {
                let unknown: Vec<&str> = map
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !IMPORT_FIELDS.contains(k))
                    .collect();
                if unknown.is_empty() {
                    out.push((line, map.into_iter().map(|(k, v)| (k, Cell::Json(v))).collect()));
                } else {
                    errors.push(line_error(line, None, unknown_fields("field", &unknown)));
                }
            }
            Ok(_) => errors.push(line_error(line, None, "not a JSON object")),
            Err(e) => errors.push(line_error(line, None, format!("not a JSON object ({e})"))),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn unknown_fields(what: &str, names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!(
        "unknown {what}{} {} (known: {})",
        if names.len() > 1 { "s" } else { "" },
        names.join(", "),
        IMPORT_FIELDS.join(", ")
    )
}

fn csv_lines(text: &str) -> Result<Vec<(usize, Fields)>, Vec<LineError>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| vec![csv_error(&e)])?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(vec![line_error(1, None, "the header row is missing")]);
    }
    let unknown: Vec<&str> = header
        .iter()
        .map(String::as_str)
        .filter(|h| !IMPORT_FIELDS.contains(h))
        .collect();
    if !unknown.is_empty() {
        return Err(vec![line_error(1, None, unknown_fields("column", &unknown))]);
    }
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(vec![line_error(1, None, format!("column `{h}` appears twice"))]);
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for row in reader.records() {
        match row {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line() as usize);
                if row.iter().all(|cell| cell.trim().is_empty()) {
                    continue;
                }
                let fields = header
                    .iter()
                    .zip(row.iter())
                    .map(|(h, cell)| (h.clone(), Cell::Text(cell.to_owned())))
                    .collect();
                out.push((line, fields));
            }
            Err(e) => errors.push(csv_error(&e)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn csv_error(e: &csv::Error) -> LineError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            line_error(line, None, format!("{len} cells where the header has {expected_len}"))
        }
        _ => line_error(line, None, format!("not CSV ({e})")),
    }
}

/// Checks one line's fields into a record, or names every field at fault.
fn record(line: usize, fields: Fields) -> Result<ImportRecord, Vec<LineError>> {
    let cells: HashMap<String, Cell> = fields.into_iter().filter(|(_, c)| !absent(c)).collect();
    let get = |name: &str| cells.get(name);
    let mut c = Checked {
        line,
        errors: Vec::new(),
    };
    let key = c.field("key", required(get("key")).and_then(parse_key));
    let product = c.field("product", required(get("product")).and_then(parse_product));
    let name = c.field(
        "name",
        required(get("name")).and_then(text).and_then(|s| msg(check_name(&s))),
    );
    let owner_email = c.field(
        "owner_email",
        required(get("owner_email"))
            .and_then(text)
            .and_then(|s| msg(check_email(&s))),
    );
    let status = c.field("status", get("status").map_or(Ok(LicenseStatus::Active), parse_status));
    let expires_at = c.field("expires_at", get("expires_at").map(parse_time).transpose());
    let max_machines = c.field(
        "max_machines",
        get("max_machines")
            .map(parse_integer)
            .transpose()
            .and_then(|n| msg(check_max_machines(n))),
    );
    let entitlements = c.field(
        "entitlements",
        get("entitlements")
            .map_or(Ok(Vec::new()), parse_list)
            .and_then(|l| msg(check_entitlements(&l))),
    );
    let metadata = c.field(
        "metadata",
        get("metadata")
            .map_or(Ok(serde_json::Map::new()), parse_object)
            .and_then(|m| msg(check_metadata(&m))),
    );
    let created_at = c.field(
        "created_at",
        get("created_at").map(parse_time).transpose().and_then(|t| match t {
            Some(t) if t > shared_db::now() => Err("must not be in the future".to_owned()),
            t => Ok(t),
        }),
    );
    let policy_id = c.field(
        "policy_id",
        get("policy_id").map(text).transpose().and_then(|p| match p {
            Some(p) if p.trim().chars().count() > 36 => Err("at most 36 characters (a policy id)".to_owned()),
            p => Ok(p.map(|p| p.trim().to_owned())),
        }),
    );
    let (
        Some(key),
        Some(product),
        Some(name),
        Some(owner_email),
        Some(status),
        Some(expires_at),
        Some(max_machines),
        Some(entitlements),
        Some(metadata),
        Some(created_at),
        Some(policy_id),
    ) = (
        key,
        product,
        name,
        owner_email,
        status,
        expires_at,
        max_machines,
        entitlements,
        metadata,
        created_at,
        policy_id,
    )
    else {
        return Err(c.errors);
    };
    Ok(ImportRecord {
        line,
        key,
        product,
        name,
        owner_email,
        status,
        expires_at,
        max_machines,
        entitlements,
        metadata,
        created_at,
        policy_id,
    })
}

/// Empty cells, empty strings and `null` are absent fields.
fn absent(c: &Cell) -> bool {
    match c {
        Cell::Json(Value::Null) => true,
        Cell::Json(Value::String(s)) | Cell::Text(s) => s.trim().is_empty(),
        Cell::Json(_) => false,
    }
}

/// The errors of one line, gathered field by field.
struct Checked {
    line: usize,
    errors: Vec<LineError>,
}

impl Checked {
    fn field<T>(&mut self, name: &str, checked: Result<T, String>) -> Option<T> {
        checked
            .map_err(|message| self.errors.push(line_error(self.line, Some(name), message)))
            .ok()
    }
}

/// A licence check's message without its field (the line error names the field).
fn msg<T>(r: Result<T, super::LicenseError>) -> Result<T, String> {
    r.map_err(|e| match e {
        super::LicenseError::Invalid { message, .. } => message,
        other => other.to_string(),
    })
}

fn required(c: Option<&Cell>) -> Result<&Cell, String> {
    c.ok_or_else(|| "required".to_owned())
}

fn text(c: &Cell) -> Result<String, String> {
    match c {
        Cell::Text(s) | Cell::Json(Value::String(s)) => Ok(s.clone()),
        Cell::Json(_) => Err("must be a string".into()),
    }
}

fn parse_key(c: &Cell) -> Result<PresentedKey, String> {
    let key = text(c)?;
    PresentedKey::parse(&key).map_err(|_| "must be 8 to 200 printable characters".to_owned())
}

fn parse_product(c: &Cell) -> Result<Product, String> {
    let s = text(c)?;
    Product::parse(s.trim()).ok_or_else(|| format!("`{s}` is not a product (client, platform)"))
}

fn parse_status(c: &Cell) -> Result<LicenseStatus, String> {
    let s = text(c)?;
    LicenseStatus::parse(s.trim()).ok_or_else(|| format!("`{s}` is not one of active, suspended, revoked"))
}

/// RFC 3339, or `YYYY-MM-DD HH:MM:SS[.ffffff]` (as MySQL prints a `DATETIME`) read as UTC.
fn parse_time(c: &Cell) -> Result<NaiveDateTime, String> {
    let s = text(c)?;
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map(|t| t.trunc_subsecs(6))
        .map_err(|_| format!("`{s}` is not an RFC 3339 time (or YYYY-MM-DD HH:MM:SS in UTC)"))
}

fn parse_integer(c: &Cell) -> Result<i32, String> {
    let bad = || "must be a whole number, or empty for unlimited".to_owned();
    match c {
        Cell::Json(Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(bad),
        Cell::Json(Value::String(s)) | Cell::Text(s) => s.trim().parse().map_err(|_| bad()),
        Cell::Json(_) => Err(bad()),
    }
}

/// A JSON array of strings; as text also a JSON array, or a list separated by commas or
/// semicolons.
fn parse_list(c: &Cell) -> Result<Vec<String>, String> {
    let strings = |v: Value| -> Result<Vec<String>, String> {
        match v {
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    _ => Err("must hold only strings".to_owned()),
                })
                .collect(),
            _ => Err("must be a JSON array, or names separated by commas or semicolons".to_owned()),
        }
    };
    match c {
        Cell::Json(Value::String(s)) | Cell::Text(s) if s.trim_start().starts_with('[') => {
            strings(serde_json::from_str(s).map_err(|e| format!("not a JSON array ({e})"))?)
        }
        Cell::Json(Value::String(s)) | Cell::Text(s) => Ok(s
            .split([',', ';'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()),
        Cell::Json(v) => strings(v.clone()),
    }
}

/// A JSON object; as text (or a JSON string) the object written out.
fn parse_object(c: &Cell) -> Result<serde_json::Map<String, Value>, String> {
    let value = match c {
        Cell::Json(Value::String(s)) | Cell::Text(s) => {
            serde_json::from_str(s).map_err(|e| format!("not a JSON object ({e})"))?
        }
        Cell::Json(v) => v.clone(),
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err("must be a JSON object".into()),
    }
}
