//! Answers as a table for a person or JSON for a program.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Output {
    /// Prints `json` as JSON, or what `table` renders from it.
    pub fn print(self, json: &Value, table: impl FnOnce(&Value) -> String) {
        match self {
            Self::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
            Self::Table => println!("{}", table(json)),
        }
    }
}

/// A table with `header`, fitted to the terminal.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
}

/// A JSON value as a cell: strings bare, null empty.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A count, which metrics carry as a float: `3`, not `3.0`.
pub fn count(value: &Value) -> String {
    match value.as_f64() {
        Some(number) if number.fract().abs() < f64::EPSILON => format!("{number:.0}"),
        _ => cell(value),
    }
}

/// An RFC 3339 time as `2026-12-03 12:04:05.123`, UTC.
pub fn time(value: &Value) -> String {
    let Some(parsed) = value.as_str().and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok()) else {
        return cell(value);
    };
    let utc = parsed.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    )
}

/// Seconds since `earlier` (RFC 3339) at `later`, as `+1.234 s`.
pub fn since(earlier: &Value, later: &Value) -> String {
    let parse = |value: &Value| value.as_str().and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok());
    match (parse(earlier), parse(later)) {
        (Some(earlier), Some(later)) => format!("+{:.3} s", (later - earlier).as_seconds_f64()),
        _ => String::new(),
    }
}

/// `text` cut to `chars` characters, with an ellipsis when cut.
pub fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
