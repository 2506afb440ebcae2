//! `checkoutctl sagas …`: the orchestrator's saga API.

use checkout_domain::OrderId;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Global;
use crate::error::CtlError;
use crate::output::{cell, since, table, time, truncate};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sagas, oldest first: by state, and not moved for a while.
    List {
        /// running, compensating, completed, cancelled or needs_attention.
        #[arg(long)]
        state: Option<String>,
        /// Only sagas not updated for at least this long: 90, 90s, 15m, 2h.
        #[arg(long)]
        older_than: Option<String>,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One saga: its state and its history as a timeline.
    Show { order_id: OrderId },
    /// Sends again the step a saga waits on or gave up on (operator).
    Retry {
        order_id: OrderId,
        /// Why; kept in the saga's history.
        #[arg(long)]
        reason: String,
    },
    /// Cancels a saga before the pivot, compensating what it did (operator).
    Abort {
        order_id: OrderId,
        /// Why; kept in the saga's history.
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(global: &Global, command: Command) -> Result<(), CtlError> {
    let http = global.http();
    let base = &global.orchestrator_url;
    match command {
        Command::List { state, older_than, limit } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(state.map(|state| format!("state={state}")));
            query.extend(older_than.map(|age| format!("older_than={age}")));
            let body = http.get(&format!("{base}/sagas?{}", query.join("&"))).await?;
            global.output.print(&body["sagas"], list_table);
        }
        Command::Show { order_id } => {
            let saga = http.get(&format!("{base}/sagas/{order_id}")).await?;
            global.output.print(&saga, timeline);
        }
        Command::Retry { order_id, reason } => {
            let saga = http
                .operate(Method::POST, &format!("{base}/sagas/{order_id}/retry"), &json!({ "reason": reason }))
                .await?;
            global.output.print(&saga, timeline);
        }
        Command::Abort { order_id, reason } => {
            let saga = http
                .operate(Method::POST, &format!("{base}/sagas/{order_id}/abort"), &json!({ "reason": reason }))
                .await?;
            global.output.print(&saga, timeline);
        }
    }
    Ok(())
}

fn list_table(sagas: &Value) -> String {
    let mut rows = table(&["ORDER", "STATE", "STEP", "DEADLINE", "STARTED", "UPDATED"]);
    for saga in sagas.as_array().into_iter().flatten() {
        rows.add_row([
            cell(&saga["order_id"]),
            cell(&saga["status"]),
            cell(&saga["current_step"]),
            time(&saga["deadline"]),
            time(&saga["started_at"]),
            time(&saga["updated_at"]),
        ]);
    }
    let count = sagas.as_array().map_or(0, Vec::len);
    format!("{rows}\n{count} saga(s)")
}

/// The saga's state, then each transition: when (and how long after the
/// start), what came in, the move, the step, what it sent, and notes.
fn timeline(saga: &Value) -> String {
    let mut lines = vec![format!("saga {}  {}", cell(&saga["order_id"]), cell(&saga["status"]).to_uppercase())];
    if let Some(step) = saga["current_step"].as_object() {
        let field = |name: &str| step.get(name).cloned().unwrap_or(Value::Null);
        lines.push(format!(
            "  waiting on  {} (attempt {}), deadline {}",
            cell(&field("step")),
            cell(&field("attempt")),
            time(&field("deadline"))
        ));
    }
    lines.push(format!("  inventory   {}", cell(&saga["inventory"])));
    lines.push(format!("  payment     {}", cell(&saga["payment"])));
    if !saga["total"].is_null() {
        let amount = serde_json::from_value::<checkout_domain::Money>(saga["total"].clone())
            .map_or_else(|_| saga["total"].to_string(), |money| money.to_string());
        lines.push(format!("  total       {amount}"));
    }
    if !saga["outcome"].is_null() {
        lines.push(format!("  outcome     {}", saga["outcome"]));
    }
    lines.push(format!("  started     {}", time(&saga["started_at"])));
    let mut rows = table(&["AT", "SINCE START", "INPUT", "MOVE", "STEP", "SENT", "NOTE"]);
    for transition in saga["transitions"].as_array().into_iter().flatten() {
        let from = transition["from"].as_str().unwrap_or("·");
        let to = cell(&transition["to"]);
        let moved = if from == to { to } else { format!("{from} → {to}") };
        let sent: Vec<String> = transition["commands"].as_array().into_iter().flatten().map(cell).collect();
        let mut notes = Vec::new();
        if let Some(ignored) = transition["ignored"].as_str() {
            notes.push(format!("ignored: {ignored}"));
        }
        if let Some(operator) = transition["operator"].as_str() {
            notes.push(format!("by {operator}: {}", transition["reason"].as_str().unwrap_or("")));
        }
        rows.add_row([
            time(&transition["at"]),
            since(&saga["started_at"], &transition["at"]),
            cell(&transition["input"]),
            moved,
            cell(&transition["step"]),
            sent.join(", "),
            truncate(&notes.join("; "), 80),
        ]);
    }
    format!("{}\n{rows}", lines.join("\n"))
}
