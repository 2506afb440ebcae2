//! The committed JSON Schemas under `schemas/` are generated from the types;
//! this fails when they drift (regenerate with `UPDATE_GOLDEN=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "common/files.rs"]
mod files;

use std::fs;
use std::path::{Path, PathBuf};

use checkout_messages::{MessageType, data_schema, envelope_schema, legacy_data_schemas};
use files::{crate_dir, updating};

fn check(path: &Path, schema: &schemars::Schema) {
    let generated = serde_json::to_string_pretty(schema).unwrap() + "\n";
    if updating() {
        fs::write(path, generated).unwrap();
        return;
    }
    let committed = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
    assert_eq!(generated, committed, "{} is stale: run with UPDATE_GOLDEN=1 and review the diff", path.display());
}

#[test]
fn committed_schemas_match_the_message_types() {
    let dir = crate_dir().join("schemas");
    check(&dir.join("envelope.schema.json"), &envelope_schema());
    let mut expected = vec!["envelope.schema.json".to_owned()];
    for &message_type in MessageType::ALL {
        let name = format!("{message_type}.v{}.schema.json", message_type.current_version().major);
        check(&dir.join(&name), &data_schema(message_type));
        expected.push(name);
    }
    for (message_type, major, schema) in legacy_data_schemas() {
        let name = format!("{message_type}.v{major}.schema.json");
        check(&dir.join(&name), &schema);
        expected.push(name);
    }
    let mut present: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    present.sort();
    expected.sort();
    assert_eq!(present, expected, "schemas/ holds files for no current or readable version");
}

#[test]
fn every_golden_file_conforms_to_the_committed_schemas() {
    let read = |path: PathBuf| -> serde_json::Value { serde_json::from_slice(&fs::read(path).unwrap()).unwrap() };
    let envelope = jsonschema::validator_for(&read(crate_dir().join("schemas/envelope.schema.json"))).unwrap();
    for entry in fs::read_dir(crate_dir().join("golden")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let golden = read(crate_dir().join("golden").join(&name));
        let errors: Vec<String> = envelope.iter_errors(&golden).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name} envelope: {errors:?}");
        let schema_name = name.replace(".json", ".schema.json");
        let data = jsonschema::validator_for(&read(crate_dir().join("schemas").join(&schema_name))).unwrap();
        let errors: Vec<String> = data.iter_errors(&golden["data"]).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name} data against {schema_name}: {errors:?}");
        // The schemas must also reject: a golden payload without its fields is invalid
        // (unless the type has no required fields at all).
        let required = read(crate_dir().join("schemas").join(&schema_name))["required"].as_array().map_or(0, Vec::len);
        if required > 0 {
            assert!(!data.is_valid(&serde_json::json!({})), "{schema_name} accepts an empty payload");
        }
    }
}
