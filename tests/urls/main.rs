//! The README's URLs for the native stack answer with what it says: a URL
//! written bare, for a person to open, answers an HTML page; a URL after
//! `GET` or in a `curl` command, for a program to read, answers JSON.
//!
//! Every loopback URL on a port of the native stack is checked, wherever it
//! is in the README outside the Docker Compose section (the compose test
//! covers that one), so a URL added to the README is checked too. The five
//! services run here on free ports, onto which their README ports are mapped
//! by name, `{order_id}` is a checkout placed here and `<now>` the moment of
//! the check; the mail catcher is
//! the MailDev that `deploy/native/stack.sh up` runs on its fixed port.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;

use reqwest::header::CONTENT_TYPE;
use support::checkout::{add_product, place, wait_until_saga_finished};
use support::stack::Stack;

/// What listens where in `deploy/native/stack.sh`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Listener {
    /// A service, by name (`port_of` in stack.sh); started by this test.
    Service(&'static str),
    /// MailDev's web UI, left where stack.sh runs it.
    MailCatcher,
}

const NATIVE_PORTS: [(u16, Listener); 6] = [
    (8080, Listener::Service("order")),
    (8081, Listener::Service("orchestrator")),
    (8082, Listener::Service("inventory")),
    (8083, Listener::Service("payment")),
    (8084, Listener::Service("notification")),
    (1080, Listener::MailCatcher),
];

/// What the README promises a URL answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// For a person: `text/html`, a document that starts `<!doctype html` or `<html`.
    Page,
    /// For a program: `application/json` (or `…+json`), a body that parses.
    Json,
}

/// A URL of the native stack as the README writes it.
#[derive(Debug)]
struct Listed {
    line: usize,
    url: String,
    listener: Listener,
    /// Scheme, host and port: `http://127.0.0.1:1080`.
    origin: String,
    /// The rest, from its first `/`: `/products`, `/sagas/{order_id}`.
    path: String,
    answer: Answer,
}

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(path).unwrap()
}

/// Every URL of the native stack that is read with GET, with what it must answer.
fn native_urls(readme: &str) -> Vec<Listed> {
    let mut listed = Vec::new();
    let (mut in_code, mut in_compose) = (false, false);
    for (index, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            in_compose = line.starts_with("### ") && line.contains("Docker Compose");
        }
        if in_compose {
            continue;
        }
        for (start, _) in line.match_indices("http://") {
            let url = line[start..].split(|c: char| c.is_whitespace() || "`|)\"'".contains(c)).next().unwrap();
            let url = url.trim_end_matches([',', '.']);
            let rest = &url["http://".len()..];
            let (origin, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(o, p)| (o, format!("/{p}")));
            let Some(("localhost" | "127.0.0.1", port)) = origin.split_once(':') else { continue };
            let Some(&(_, listener)) = NATIVE_PORTS.iter().find(|(native, _)| port == native.to_string()) else {
                continue;
            };
            let before = &line[..start];
            let word = before.trim_end().rsplit(|c: char| c.is_whitespace() || c == '`').next().unwrap_or("");
            let answer = match word {
                "GET" => Answer::Json,
                "POST" | "PUT" | "PATCH" | "DELETE" => continue,
                _ if before.contains("curl ") => Answer::Json,
                _ => Answer::Page,
            };
            let origin = format!("http://{origin}");
            listed.push(Listed { line: index + 1, url: url.to_owned(), listener, origin, path, answer });
        }
    }
    listed
}

/// Fetches `url` and says what is wrong with its answer, if anything.
async fn check(http: &reqwest::Client, url: &str, answer: Answer) -> Result<(), String> {
    let response = http.get(url).send().await.map_err(|e| format!("nothing answers: {e}"))?;
    let status = response.status();
    let content_type =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = response.text().await.map_err(|e| format!("the body did not arrive: {e}"))?;
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let start: String = body.trim_start().chars().take(14).collect::<String>().to_ascii_lowercase();
    let wrong = if status.is_success() {
        match answer {
            Answer::Page if media_type != "text/html" => Some("not text/html"),
            Answer::Page if !(start.starts_with("<!doctype html") || start.starts_with("<html")) => {
                Some("not an HTML document")
            }
            Answer::Json if media_type != "application/json" && !media_type.ends_with("+json") => {
                Some("not application/json")
            }
            Answer::Json if serde_json::from_str::<serde_json::Value>(&body).is_err() => Some("not JSON"),
            Answer::Page | Answer::Json => None,
        }
    } else {
        Some("not a success")
    };
    match wrong {
        None => Ok(()),
        Some(wrong) => {
            let body: String = body.chars().take(200).collect();
            Err(format!("{wrong}: {status}, content-type {content_type:?}, body {body:?}"))
        }
    }
}

#[test]
fn the_readme_lists_the_mail_catchers_page_and_an_api_of_every_service_of_the_native_stack() {
    let listed = native_urls(&readme());
    assert!(
        listed.iter().any(|l| l.listener == Listener::MailCatcher && l.path == "/" && l.answer == Answer::Page),
        "{listed:#?}"
    );
    for (_, listener) in NATIVE_PORTS.iter().filter(|(_, l)| matches!(l, Listener::Service(_))) {
        assert!(
            listed.iter().any(|l| l.listener == *listener && l.answer == Answer::Json),
            "{listener:?}: {listed:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_the_readme_lists_for_the_native_stack_answers_html_for_a_person_and_json_for_a_program() {
    let stack = Stack::start(&[]).await;
    let sku = add_product(&stack, "URLS", 1_250, 5).await;
    let order = place(&stack, "urls@example.com", &[(&sku, 1)], "tok_visa").await;
    wait_until_saga_finished(&stack, order).await;

    let mut failures = Vec::new();
    let listed = native_urls(&readme());
    for listed in &listed {
        // `<now>`: the moment of the check, for `as_of` examples.
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let path = listed
            .path
            .replace("{order_id}", &order.to_string())
            .replace("<order_id>", &order.to_string())
            .replace("<now>", &now);
        assert!(
            !path.contains(['{', '<']),
            "README line {}: no value for the placeholder in {}",
            listed.line,
            listed.url
        );
        let url = match listed.listener {
            Listener::Service(name) => format!("{}{path}", stack.url(name)),
            Listener::MailCatcher => format!("{}{path}", listed.origin),
        };
        println!("README line {}: {} answers {:?}?", listed.line, listed.url, listed.answer);
        if let Err(wrong) = check(&stack.http, &url, listed.answer).await {
            failures.push(format!(
                "README line {}: {} ({url}, expected {:?}): {wrong}",
                listed.line, listed.url, listed.answer
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} URLs answer otherwise than the README says (the mail catcher on :1080 is the MailDev \
         `deploy/native/stack.sh up` runs, and restarts when it is not the pinned version):\n{}",
        failures.len(),
        listed.len(),
        failures.join("\n")
    );
}
