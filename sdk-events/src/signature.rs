//! Webhook signatures per the Standard Webhooks spec (<https://www.standardwebhooks.com>):
//! the headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several signatures
//! space-separated while a secret is rotated; secrets written `whsec_<base64 key>`.
//!
//! The bus signs with [`signature_header`]; a receiver checks with [`verify`] (or the axum
//! extractor [`VerifiedEvent`](crate::VerifiedEvent)), or with any Standard Webhooks
//! library given the same `whsec_` secret.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sdk_events::signature::{signature_header, verify, Secret, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
//!
//! let secret = Secret::generate();
//! let (id, now) = ("msg_1", SystemTime::now());
//! let ts = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
//! let body = br#"{"action":"user.created"}"#;
//! let mut headers = http::HeaderMap::new();
//! headers.insert(WEBHOOK_ID, id.parse().unwrap());
//! headers.insert(WEBHOOK_TIMESTAMP, ts.into());
//! headers.insert(WEBHOOK_SIGNATURE, signature_header(&[&secret], id, ts, body).parse().unwrap());
//! assert!(verify(&[secret.clone()], &headers, body, now, Duration::from_secs(300)).is_ok());
//! assert!(verify(&[secret], &headers, b"{}", now, Duration::from_secs(300)).is_err());
//! ```

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use http::HeaderMap;
use ring::{hmac, rand::SecureRandom as _};

/// The message id header: the same on every attempt and replay of one event to one
/// subscription, so a receiver can drop repeats.
pub const WEBHOOK_ID: &str = "webhook-id";
/// When the attempt was signed, in Unix seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// `v1,<signature>`, space-separated when there are several.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret in its written form.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a delivery's timestamp may be from the receiver's clock (the spec's 5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A signing key. `Debug` never shows it; [`expose`](Secret::expose) writes it as
/// `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// Why a secret or a delivery was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A `whsec_` secret whose rest is not base64, or a key out of bounds.
    #[error("the secret is not valid: {0}")]
    BadSecret(&'static str),
    /// A header is missing or unreadable.
    #[error("the `{0}` header is missing or not valid")]
    MissingHeader(&'static str),
    /// The timestamp is too far from now (a replayed or delayed delivery).
    #[error("the webhook timestamp is outside the tolerance")]
    Stale,
    /// No signature matches any of the secrets.
    #[error("no webhook signature matches")]
    Mismatch,
}

impl Secret {
    /// A fresh random key of 24 bytes (the system's secure random source).
    pub fn generate() -> Secret {
        let mut key = vec![0u8; 24];
        // The system source does not fail on the platforms this runs on; should it, the
        // key would be refused by `parse`'s bounds rather than used weak.
        if ring::rand::SystemRandom::new().fill(&mut key).is_err() {
            key.clear();
        }
        Secret(key)
    }

    /// Reads a secret: `whsec_<base64>` as the spec writes it; any other string is taken
    /// as the key's bytes (the reference API's `"secret": "user-service-secret"`; its
    /// Standard Webhooks form is then [`expose`](Secret::expose)'s). 8 to 128 bytes.
    pub fn parse(text: &str) -> Result<Secret, SignatureError> {
        let key = match text.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|_| SignatureError::BadSecret("the part after `whsec_` is not base64"))?,
            None => text.as_bytes().to_vec(),
        };
        if !(8..=128).contains(&key.len()) {
            return Err(SignatureError::BadSecret("use 8 to 128 bytes"));
        }
        Ok(Secret(key))
    }

    /// The secret as `whsec_<base64>`, for the one answer that hands it out and for
    /// storage. Never logged.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.key(), &signed_content(id, timestamp, body));
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

fn signed_content(id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` value for `secrets` (the current one first, then one being
/// rotated out): each signature space-separated.
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a verified delivery said of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id`: the same on every attempt and replay of this event.
    pub id: String,
    /// The `webhook-timestamp`, Unix seconds.
    pub timestamp: u64,
}

/// Checks a delivery: its timestamp within `tolerance` of `now`, and one of its `v1`
/// signatures made by one of `secrets` (compared in constant time).
pub fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<Verified, SignatureError> {
    let text = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::MissingHeader(name))
    };
    let id = text(WEBHOOK_ID)?;
    let timestamp: u64 = text(WEBHOOK_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::MissingHeader(WEBHOOK_TIMESTAMP))?;
    let signatures = text(WEBHOOK_SIGNATURE)?;
    let now_secs = sdk_base::clock::unix_secs(now);
    if now_secs.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let content = signed_content(id, timestamp, body);
    let tags: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .collect();
    let matches = secrets.iter().any(|secret| {
        let key = secret.key();
        tags.iter()
            .any(|tag| hmac::verify(&key, &content, tag).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    Ok(Verified {
        id: id.to_owned(),
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks spec's test vectors (the reference libraries'
    /// `test_sign` case).
    #[test]
    fn signs_the_specs_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_plain_secret_is_its_bytes_and_debug_hides_it() {
        let secret = Secret::parse("user-service-secret").expect("secret");
        assert_eq!(
            Secret::parse(&secret.expose()).expect("written form"),
            secret
        );
        assert!(!format!("{secret:?}").contains("user"));
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse("whsec_***").is_err());
    }

    #[test]
    fn either_of_two_secrets_verifies_and_stale_ones_do_not() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let body = b"{}";
        let mut headers = HeaderMap::new();
        headers.insert(WEBHOOK_ID, http::HeaderValue::from_static("msg_1"));
        headers.insert(WEBHOOK_TIMESTAMP, http::HeaderValue::from(1_000_000u64));
        let both = signature_header(&[&new, &old], "msg_1", 1_000_000, body);
        headers.insert(WEBHOOK_SIGNATURE, both.parse().expect("header"));
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_100);
        for secret in [&old, &new] {
            assert!(verify(
                std::slice::from_ref(secret),
                &headers,
                body,
                at,
                DEFAULT_TOLERANCE
            )
            .is_ok());
        }
        let other = Secret::generate();
        assert_eq!(
            verify(&[other], &headers, body, at, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        let late = at + Duration::from_secs(600);
        assert_eq!(
            verify(&[new], &headers, body, late, DEFAULT_TOLERANCE),
            Err(SignatureError::Stale)
        );
    }
}
