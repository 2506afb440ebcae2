//! Machine-readable JSON Schemas generated from the message types. The
//! committed files under `schemas/` are checked against these by a test.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator, json_schema};

use crate::MessageType;
use crate::upcast::legacy_schemas;

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// Schema of the `data` of a message type at its current version.
pub fn data_schema(message_type: MessageType) -> Schema {
    let mut schema = message_type.current_data_schema(&mut generator());
    schema.insert("title".into(), format!("{} {}", message_type, message_type.current_version()).into());
    schema
}

/// Schemas of the older versions this build still reads: (type, major, schema).
pub fn legacy_data_schemas() -> Vec<(MessageType, u16, Schema)> {
    legacy_schemas(&mut generator())
        .into_iter()
        .map(|(message_type, major, mut schema)| {
            schema.insert("title".into(), format!("{message_type} {major}.x").into());
            (message_type, major, schema)
        })
        .collect()
}

/// Schema of the envelope (CloudEvents 1.0 structured mode plus our extensions).
pub fn envelope_schema() -> Schema {
    let types: Vec<&str> = MessageType::ALL.iter().map(|t| t.name()).collect();
    let uuid = json_schema!({ "type": "string", "format": "uuid" });
    json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Envelope",
        "description": "A checkout message: a CloudEvents 1.0 event in structured JSON mode.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "schemaversion", "subject", "time",
                     "correlationid", "causationid", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": uuid,
            "source": { "type": "string", "minLength": 1, "description": "Emitting service, /checkout/<service>." },
            "type": { "enum": types },
            "schemaversion": { "type": "string", "pattern": "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$" },
            "subject": { "type": "string", "format": "uuid", "description": "Order id; also the Kafka record key." },
            "time": { "type": "string", "format": "date-time" },
            "correlationid": uuid,
            "causationid": uuid,
            "ordersequence": {
                "type": "integer", "minimum": 1,
                "description": "Position of this event in its order's stream at the source, when the source keeps one."
            },
            "datacontenttype": { "const": "application/json" },
            "data": { "type": "object" }
        }
    })
}
