//! The README's table of metrics (`### Metrics`): what each service exports.

#![allow(dead_code, reason = "each test binary uses a different part")]

/// The services, by name, as the table names them.
pub const SERVICES: [&str; 5] = ["order", "orchestrator", "inventory", "payment", "notification"];

const README: &str = include_str!("../../README.md");

/// One row of the table: its metric names, their type, their label names,
/// and the services that export them.
#[derive(Debug)]
pub struct Documented {
    pub names: Vec<String>,
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub services: Vec<&'static str>,
}

/// The backticked words of `cell` outside parentheses: `` `group`, `outcome`
/// (`handled`, …) `` names the labels `group` and `outcome`.
fn label_names(cell: &str) -> Vec<String> {
    let mut outside = String::new();
    let mut depth = 0_u32;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The rows of the table: the backticked names of the first cell, the
/// type, and the services (`all` or names).
pub fn documented() -> Vec<Documented> {
    let section = README.split("\n### Metrics\n").nth(1).expect("README has a Metrics section");
    let section = section.split("\n#").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let names = cells[0].split('`').skip(1).step_by(2).map(str::to_owned).collect();
        let kind = match cells[1] {
            "counter" => "counter",
            "gauge" => "gauge",
            "histogram" => "histogram",
            other => panic!("unknown metric type {other:?} in {line}"),
        };
        let services = if cells[3] == "all" {
            SERVICES.to_vec()
        } else {
            cells[3]
                .split(',')
                .map(|name| {
                    let name = name.trim();
                    *SERVICES.iter().find(|known| **known == name).unwrap_or_else(|| panic!("no service {name:?}"))
                })
                .collect()
        };
        rows.push(Documented { names, kind, labels: label_names(cells[2]), services });
    }
    assert!(rows.len() >= 30, "the table parsed into only {} rows: {rows:?}", rows.len());
    rows
}
