//! Round trips of real reports through `guru::model`: text → `from_text` →
//! text, JSON → `from_json` → the same JSON value, and JSON validated against
//! the checked-in schema (`docs/guru-report.schema.json`). Shared by the
//! `report_model*` tests so every topic checks its lines the same way.

use std::time::{Duration, Instant};

use guru::model::Report;
use serde_json::Value;

use crate::Fixture;

/// text → `from_text` → `to_text` is the same text; returns the model.
/// Panics naming the first line that differs.
pub fn text_round_trip(text: &str) -> Report {
    let model = Report::from_text(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    let back = model.to_text();
    if back != text {
        let (a, b): (Vec<_>, Vec<_>) = (text.lines().collect(), back.lines().collect());
        let at = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "text differs at line {}:\n  report: {:?}\n  model:  {:?}\nin:\n{text}",
            at + 1,
            a.get(at),
            b.get(at)
        );
    }
    assert!(model.read_from_text);
    model
}

/// JSON → `from_json` → serde is the same value, and the report validates
/// against the checked-in schema; returns the model.
pub fn json_round_trip(line: &str) -> Report {
    let original: Value = serde_json::from_str(line).expect("JSON report");
    let model = Report::from_json(line).unwrap_or_else(|e| panic!("{e}\n{line}"));
    let again = serde_json::to_value(&model).expect("serialize");
    assert_eq!(again, original, "model JSON differs from the report's");
    assert!(!model.read_from_text);
    validate_against_schema(&original);
    model
}

/// The checked-in JSON Schema of the report.
pub fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/guru-report.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("schema JSON")
}

/// Panics listing every place `doc` does not match the schema.
pub fn validate_against_schema(doc: &Value) {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema: {errors:#?}"
    );
}

/// The JSON reports on `fx`'s stderr so far (one line each), once there are
/// at least `n`; panics with the stderr seen after `wait`.
pub fn json_report_lines(fx: &Fixture, n: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let lines: Vec<String> = fx
            .stderr_text()
            .lines()
            .filter(|l| l.starts_with('{') && l.ends_with('}'))
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} JSON reports within {wait:?}:\n{}",
            fx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
