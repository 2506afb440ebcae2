//! The services' HTTP APIs: JSON in and out, problem+json answers turned
//! into the error (and exit code) they mean.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::CtlError;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(token: Option<String>) -> Self {
        // Building a client fails only without a TLS backend, which plain HTTP does not need.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { http, token }
    }

    pub async fn get(&self, url: &str) -> Result<Value, CtlError> {
        self.send(Method::GET, url, None, false).await
    }

    /// A request only an operator may make: sends the bearer token.
    pub async fn operate(&self, method: Method, url: &str, body: &Value) -> Result<Value, CtlError> {
        self.send(method, url, Some(body), true).await
    }

    /// A read only an operator may make: sends the bearer token.
    pub async fn get_as_operator(&self, url: &str) -> Result<Value, CtlError> {
        self.send(Method::GET, url, None, true).await
    }

    /// The body of `url` as text, whatever its status (for `/metrics`, `/readyz`).
    pub async fn text(&self, url: &str) -> Result<(StatusCode, String), CtlError> {
        let response = self.http.get(url).send().await.map_err(|error| CtlError::failed(url, error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| CtlError::failed(url, error))?;
        Ok((status, text))
    }

    async fn send(&self, method: Method, url: &str, body: Option<&Value>, operator: bool) -> Result<Value, CtlError> {
        let mut request = self.http.request(method, url);
        if operator {
            let token = self.token.as_deref().ok_or_else(|| {
                CtlError::Unauthorized("an operator token is needed: --token or CHECKOUT_OPERATOR_TOKEN".to_owned())
            })?;
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| CtlError::failed(url, error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| CtlError::failed(url, error))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = problem_message(&value, status);
        Err(match status {
            StatusCode::NOT_FOUND => CtlError::NotFound(message),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CtlError::Unauthorized(message),
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                CtlError::Refused(message)
            }
            _ => CtlError::Failed(format!("{url}: {message}")),
        })
    }
}

/// `title: detail` of a problem+json body, and the field errors it lists.
fn problem_message(body: &Value, status: StatusCode) -> String {
    let title = body["title"].as_str().unwrap_or_else(|| status.canonical_reason().unwrap_or("error"));
    let mut parts = vec![match body["detail"].as_str() {
        Some(detail) => format!("{title}: {detail}"),
        None => title.to_owned(),
    }];
    for error in body["errors"].as_array().into_iter().flatten() {
        let field = error["field"].as_str().unwrap_or("?");
        let reason = error["message"].as_str().unwrap_or("invalid");
        parts.push(format!("{field}: {reason}"));
    }
    if body.is_string() {
        parts.push(format!("HTTP {status}"));
    }
    parts.join("; ")
}
