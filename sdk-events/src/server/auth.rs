//! Who is calling: the admin (its bearer token), an application (its own publishing
//! token, stored only as a SHA-256), or nobody (allowed only with open writes).

use std::{collections::HashMap, sync::RwLock};

use axum::http::{header, HeaderMap, StatusCode};
use ring::rand::SecureRandom as _;
use sdk_base::sync::UnpoisonedRw as _;
use sdk_server::ApiError;
use subtle::ConstantTimeEq as _;

use super::Bus;

/// The caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Caller {
    /// The admin token.
    Admin,
    /// An application's token.
    Application(String),
    /// No token, and the operator opened writes.
    Open,
}

/// Applications by token hash, as found: tokens never change, so a hit stays true.
#[derive(Debug, Default)]
pub(super) struct Tokens(RwLock<HashMap<String, String>>);

/// A fresh publishing token: `evt_` and 32 random bytes in hex.
pub(super) fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "no secure random source to make a token".into(),
            )
        })?;
    Ok(format!("evt_{}", sdk::trace::hex_string(&bytes)))
}

/// The hex SHA-256 of `token`: what is stored.
pub(super) fn hash(token: &str) -> String {
    sdk::trace::hex_string(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn unauthorized() -> ApiError {
    ApiError(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required".into(),
    )
}

impl Bus {
    /// Who presented `headers`' bearer token.
    pub(super) async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return if self.config.open_writes && self.config.admin_token.is_none() {
                Ok(Caller::Open)
            } else {
                Err(unauthorized())
            };
        };
        if let Some(admin) = &self.config.admin_token {
            // Compared in constant time, so the answer time says nothing about the token.
            if bool::from(presented.as_bytes().ct_eq(admin.as_bytes())) {
                return Ok(Caller::Admin);
            }
        }
        let hashed = hash(presented);
        if let Some(name) = self.tokens.0.read_locked().get(&hashed) {
            return Ok(Caller::Application(name.clone()));
        }
        let found = self
            .store
            .application_by_token(&hashed)
            .await
            .map_err(super::api::store_error)?;
        let name = found.ok_or_else(unauthorized)?;
        self.tokens.0.write_locked().insert(hashed, name.clone());
        Ok(Caller::Application(name))
    }

    /// Checks that the caller is the admin (or writes are open).
    pub(super) async fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.caller(headers).await? {
            Caller::Admin | Caller::Open => Ok(()),
            Caller::Application(_) => Err(ApiError(
                StatusCode::FORBIDDEN,
                "this needs the admin token, not an application's".into(),
            )),
        }
    }
}
