//! Operator authentication. Actions that change money or stock by hand
//! (retrying or aborting a saga, setting stock) require a bearer token from
//! the service's configuration, `OPERATOR_TOKENS=name=token[,name=token…]`;
//! the name is who the action is recorded as. Tokens are compared in
//! constant time and never logged.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::Problem;
use crate::config::{ConfigError, Env};

/// Shortest token accepted: a guessable token would defeat the point.
const MIN_TOKEN_LEN: usize = 16;

/// The operators a service accepts, by token.
#[derive(Clone, Default)]
pub struct OperatorTokens {
    operators: Arc<Vec<(String, SecretString)>>,
}

impl std::fmt::Debug for OperatorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.operators.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OperatorTokens").field("operators", &names).finish()
    }
}

impl OperatorTokens {
    /// Reads `OPERATOR_TOKENS`; none configured means no operator action is allowed.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::parse(&env.string("OPERATOR_TOKENS", "")).map_err(|problem| ConfigError::new("OPERATOR_TOKENS", problem))
    }

    /// `name=token` pairs separated by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut operators = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let Some((name, token)) = entry.split_once('=') else {
                return Err("each entry must look like name=token".to_owned());
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
                return Err("an operator's name must be printable ASCII without spaces".to_owned());
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!("the token of {name} is shorter than {MIN_TOKEN_LEN} characters"));
            }
            if operators.iter().any(|(known, _): &(String, SecretString)| known == name) {
                return Err(format!("{name} is named twice"));
            }
            operators.push((name.to_owned(), SecretString::from(token.to_owned())));
        }
        Ok(Self { operators: Arc::new(operators) })
    }

    /// The operator whose token `presented` is. Every configured token is
    /// compared, each in constant time, so the answer's timing tells nothing.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in self.operators.iter() {
            if bool::from(token.expose_secret().as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The operator a request is authenticated as; rejects with `401` otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(pub String);

/// Why a request is not an operator's.
#[derive(Debug)]
pub struct Unauthorized(&'static str);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let problem =
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Operator token required", self.0.to_owned());
        let mut response = problem.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"operator\""));
        response
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    OperatorTokens: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = OperatorTokens::from_ref(state);
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(Unauthorized("send Authorization: Bearer <operator token>"))?;
        let name = tokens.identify(presented.trim()).ok_or(Unauthorized("the operator token is not valid"))?;
        tracing::info!(operator = name, "operator authenticated");
        Ok(Self(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_operators_and_bad_configurations_are_refused() {
        let tokens = OperatorTokens::parse("alice=aaaaaaaaaaaaaaaa, bob=bbbbbbbbbbbbbbbbbb").unwrap();
        assert_eq!(tokens.identify("aaaaaaaaaaaaaaaa"), Some("alice"));
        assert_eq!(tokens.identify("bbbbbbbbbbbbbbbbbb"), Some("bob"));
        assert_eq!(tokens.identify("bbbbbbbbbbbbbbbbb"), None, "a prefix is not the token");
        assert_eq!(tokens.identify(""), None);
        assert_eq!(OperatorTokens::parse("").unwrap().identify("anything"), None);
        for bad in [
            "alice",
            "alice=short",
            "=aaaaaaaaaaaaaaaa",
            "a b=aaaaaaaaaaaaaaaa",
            "a=aaaaaaaaaaaaaaaa,a=bbbbbbbbbbbbbbbb",
        ] {
            assert!(OperatorTokens::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(!format!("{tokens:?}").contains("aaaa"), "a token reached Debug");
    }
}
