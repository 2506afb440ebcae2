//! JSON Schema fragments for the validated string types, so the generated
//! message schemas state the same rules the constructors enforce.

use schemars::{Schema, json_schema};

pub(crate) fn string_schema(min_len: usize, max_len: usize, pattern: &str, description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": min_len,
        "maxLength": max_len,
        "pattern": pattern,
        "description": description,
    })
}
