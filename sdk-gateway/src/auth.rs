//! Token checks on protected routes (jsonwebtoken, with the RustCrypto backend).
//!
//! - HS256 tokens are checked with the configured secret, and only with it.
//! - RS256 and ES256 tokens are checked with the keys of the JWKS document, fetched through
//!   the SDK's client, kept for `jwks_ttl`, and fetched again when a token names a `kid` the
//!   set does not have (at most once per `jwks_min_refetch`: made-up ids cannot make the
//!   gateway hammer the key server).
//! - Algorithm confusion is impossible by construction: which key checks a token depends on
//!   its `alg`, a JWKS key is used only for the algorithm its type (and its own `alg`, if
//!   given) allows, and symmetric keys in a JWKS document are ignored. An RS256 public key
//!   presented as an HS256 secret therefore meets the configured secret and fails.
//! - `exp` is required; `exp` and `nbf` are checked with `leeway`; `iss` and `aud` when set.
//! - A token that passed is remembered by its exact text for `verified_token_ttl` (30 s by
//!   default, never past its own `exp`), so a client's next requests cost a lookup instead
//!   of a signature check (an HS256 check is most of a gateway's work per request; an RS256
//!   one, forty times that). A key removed from the JWKS stops working within that time.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use sdk_base::sync::UnpoisonedRw as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm},
    Algorithm, DecodingKey, Validation,
};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::JwtConfig;

/// Why a request's token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("a bearer token is required")]
    Missing,
    /// The token is malformed, badly signed, expired or not yet valid, or for someone else.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The token is valid but lacks a scope the route needs.
    #[error("the token lacks the scope `{0}`")]
    MissingScope(String),
}

/// A verified token's claims (cheap to clone: shared).
#[derive(Clone, Debug)]
pub struct Claims(Arc<ClaimSet>);

#[derive(Debug)]
struct ClaimSet {
    claims: Map<String, Value>,
    /// `sub`, shared, for rate-limit keys.
    subject: Option<Arc<str>>,
    /// `exp`, in Unix seconds.
    expires: u64,
    /// The forwarded claims as headers, made once per token.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Claims {
    fn new(claims: Map<String, Value>, forward: &[(String, HeaderName)]) -> Self {
        let subject = claims.get("sub").and_then(Value::as_str).map(Arc::from);
        let expires = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let headers = forward
            .iter()
            .filter_map(|(claim, header)| {
                let value = match claims.get(claim)? {
                    Value::String(s) => HeaderValue::from_str(s).ok(),
                    Value::Null => None,
                    other => HeaderValue::from_str(&other.to_string()).ok(),
                };
                Some((header.clone(), value?))
            })
            .collect();
        Claims(Arc::new(ClaimSet {
            claims,
            subject,
            expires,
            headers,
        }))
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&Arc<str>> {
        self.0.subject.as_ref()
    }

    /// One claim.
    pub fn get(&self, claim: &str) -> Option<&Value> {
        self.0.claims.get(claim)
    }

    /// Whether the token grants `scope` (its `scope` claim, space-separated, or `scp`).
    pub fn has_scope(&self, scope: &str) -> bool {
        let spaced = self
            .get("scope")
            .and_then(Value::as_str)
            .is_some_and(|s| s.split(' ').any(|s| s == scope));
        let listed = self
            .get("scp")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(scope)));
        spaced || listed
    }
}

/// Checks tokens: the configured secret and key set, and what a valid token must carry.
#[derive(Debug)]
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    forward: Vec<(String, HeaderName)>,
    /// The header names of `forward`.
    forward_names: Vec<HeaderName>,
    /// Tokens that passed, by their text (none when `verified_token_ttl` is zero).
    verified: Option<Remembered>,
}

/// The most verified tokens remembered at once (a power of two).
const VERIFIED_TOKENS: usize = 1 << 16;

/// Verified tokens, remembered by their exact text: a direct-mapped table, one slot per
/// hash of a token, where a token that lands in a taken slot replaces the one there. Each
/// lives until its own `exp` or for the configured time, whichever comes first.
///
/// Why not moka (used here before): every request looks its token up, and moka's `get`
/// records each read for its eviction policy, reads its own clock and runs its
/// housekeeping, ~2,400 instructions of a gateway's request; a slot here is one hash, one
/// uncontended read lock and one comparison. What a direct-mapped table gives up, an exact
/// least-recently-used order, costs one more signature check when two clients' tokens
/// meet in a slot.
struct Remembered {
    slots: Box<[RwLock<Option<Box<Memo>>>]>,
    hasher: foldhash::fast::RandomState,
    ttl: Duration,
}

struct Memo {
    /// The token's whole hash, compared before its text: another token reaches the text
    /// comparison (whose time depends on how much of it matches) only by a 64-bit collision.
    hash: u64,
    token: Box<str>,
    claims: Claims,
    until: Instant,
}

impl Remembered {
    fn new(ttl: Duration) -> Self {
        Remembered {
            slots: (0..VERIFIED_TOKENS).map(|_| RwLock::new(None)).collect(),
            hasher: foldhash::fast::RandomState::default(),
            ttl,
        }
    }

    fn slot(&self, token: &str) -> (u64, &RwLock<Option<Box<Memo>>>) {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, token);
        // The table's length is a power of two: the low bits pick the slot.
        (hash, &self.slots[hash as usize & (VERIFIED_TOKENS - 1)])
    }

    /// The claims of `token` when it is remembered and its time has not run out.
    fn get(&self, token: &str) -> Option<Claims> {
        let (hash, slot) = self.slot(token);
        let memo = slot.read_locked();
        let memo = memo.as_deref()?;
        (memo.hash == hash && *memo.token == *token && Instant::now() < memo.until)
            .then(|| memo.claims.clone())
    }

    /// Remembers `token` as verified, with `claims`.
    fn insert(&self, token: &str, claims: Claims) {
        let left = Duration::from_secs(claims.0.expires.saturating_sub(unix_now()));
        // A year at most, so no setting or `exp` can overflow the instant.
        let life = self.ttl.min(left).min(Duration::from_secs(365 * 24 * 3600));
        let until = Instant::now() + life;
        let (hash, slot) = self.slot(token);
        let memo = Memo {
            hash,
            token: token.into(),
            claims,
            until,
        };
        *slot.write_locked() = Some(Box::new(memo));
    }
}

impl std::fmt::Debug for Remembered {
    // Never the tokens: they are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("slots", &self.slots.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    sdk_base::clock::now_unix_secs()
}

impl Verifier {
    /// A verifier for `config`; JWKS documents are fetched through `sdk`.
    pub fn new(config: &JwtConfig, sdk: &sdk::ServiceSdk) -> Result<Self, String> {
        crate::install_jwt_crypto();
        let hs256 = match &config.hs256_secret {
            Some(secret) => Some(
                DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| format!("hs256_secret: {e}"))?,
            ),
            None => None,
        };
        let jwks = match &config.jwks_url {
            Some(url) => Some(Jwks::new(
                url,
                sdk,
                config.jwks_ttl,
                config.jwks_min_refetch,
            )?),
            None => None,
        };
        let forward: Vec<(String, HeaderName)> = config
            .forward_claims
            .iter()
            .filter_map(|(claim, header)| {
                HeaderName::from_bytes(header.as_bytes())
                    .ok()
                    .map(|h| (claim.clone(), h))
            })
            .collect();
        let verified_ttl = config.verified_token_ttl;
        let verified = (!verified_ttl.is_zero()).then(|| Remembered::new(verified_ttl));
        let forward_names = forward.iter().map(|(_, header)| header.clone()).collect();
        Ok(Verifier {
            forward_names,
            hs256,
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway,
            forward,
            verified,
        })
    }

    /// The header names that claims are forwarded in (removed from what clients send).
    pub fn forwarded_headers(&self) -> &[HeaderName] {
        &self.forward_names
    }

    /// Fetches the key set now (at start-up), so the first request does not wait for it.
    pub async fn prefetch(&self) {
        if let Some(jwks) = &self.jwks {
            if let Err(e) = jwks.refresh(true).await {
                tracing::warn!(error = %e, "could not fetch the JWKS; will retry on demand");
            }
        }
    }

    /// The claims of the bearer token in `headers`, verified.
    pub async fn verify_request(&self, headers: &HeaderMap) -> Result<Claims, AuthError> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    /// The claims of `token`, verified (or remembered as verified).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let Some(verified) = &self.verified else {
            return self.check(token).await;
        };
        if let Some(claims) = verified.get(token) {
            // Still within its `exp` (the entry never outlives it) and `nbf` passed already.
            return Ok(claims);
        }
        let claims = self.check(token).await?;
        // An `exp` so close that the leeway is all it has left: not worth remembering.
        if claims.0.expires > unix_now() {
            verified.insert(token, claims.clone());
        }
        Ok(claims)
    }

    /// Checks `token`'s signature and claims.
    async fn check(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| AuthError::Invalid("HS256 tokens are not accepted".into()))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AuthError::Invalid(format!("{:?} tokens are not accepted", header.alg))
                })?;
                jwks.key(header.kid.as_deref(), header.alg).await?
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "{other:?} tokens are not accepted"
                )))
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = self.audience.is_some();
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(&e))?;
        Ok(Claims::new(data.claims, &self.forward))
    }

    /// Sets the forwarded claims of `claims` as headers (a claim that is absent or cannot
    /// be a header value is left out).
    pub fn claim_headers(&self, claims: &Claims, headers: &mut HeaderMap) {
        for (name, value) in &claims.0.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

fn invalid(e: &jsonwebtoken::errors::Error) -> AuthError {
    AuthError::Invalid(e.to_string())
}

/// The keys of one JWKS document, by key id.
#[derive(Debug)]
struct Jwks {
    client: sdk::ServiceClient,
    path: String,
    ttl: Duration,
    min_refetch: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching (one fetch at a time); holds when the last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    unnamed: Vec<(Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
}

impl Jwks {
    fn new(
        url: &str,
        sdk: &sdk::ServiceSdk,
        ttl: Duration,
        min_refetch: Duration,
    ) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| "jwks_url is not a URL".to_owned())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err("jwks_url must be an absolute http(s) URL".into());
        };
        let client = sdk
            .client_for_url(&format!("{scheme}://{authority}"))
            .map_err(|e| format!("jwks_url: {e}"))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Jwks {
            client,
            path,
            ttl,
            min_refetch,
            keys: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key for a token naming `kid` and `alg`.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let set = self.current();
        let stale = set.fetched.is_none_or(|at| at.elapsed() >= self.ttl);
        if !stale {
            if let Some(key) = set.find(kid, alg) {
                return Ok(key);
            }
        }
        // Unknown kid or old keys: fetch again (a stale set is still used if that fails).
        if let Err(e) = self.refresh(stale).await {
            tracing::warn!(error = %e, "could not fetch the JWKS");
        }
        self.current().find(kid, alg).ok_or_else(|| {
            AuthError::Invalid(match kid {
                Some(kid) => format!("no {alg:?} key `{kid}` in the key set"),
                None => {
                    format!("the token names no key, and the key set has no single {alg:?} key")
                }
            })
        })
    }

    /// Fetches the document again, unless another fetch is under way (then waits for it)
    /// or, without `force`, the last began less than `min_refetch` ago.
    async fn refresh(&self, force: bool) -> Result<(), String> {
        let before = self.current().fetched;
        let mut last = self.fetching.lock().await;
        if self.current().fetched != before {
            return Ok(()); // fetched while we waited
        }
        if !force && last.is_some_and(|at| at.elapsed() < self.min_refetch) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let response = self
            .client
            .get(&self.path)
            .no_cache()
            .response()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the key server answered {}", response.status()));
        }
        let document: JwkSet = response
            .json()
            .map_err(|e| format!("not a JWKS document: {e}"))?;
        let set = KeySet::from_document(&document);
        tracing::info!(keys = set.keys.len() + set.unnamed.len(), "JWKS fetched");
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(())
    }
}

impl KeySet {
    fn from_document(document: &JwkSet) -> Self {
        let mut set = KeySet {
            fetched: Some(Instant::now()),
            ..KeySet::default()
        };
        for jwk in &document.keys {
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                    if p.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                // Symmetric keys, other curves and algorithms: never used.
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    set.keys.insert(kid.clone(), (alg, key));
                }
                None => set.unnamed.push((alg, key)),
            }
        }
        set
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self
                .keys
                .get(kid)
                .filter(|(a, _)| *a == alg)
                .map(|(_, key)| key.clone()),
            None => {
                let mut all = self
                    .keys
                    .values()
                    .chain(self.unnamed.iter())
                    .filter(|(a, _)| *a == alg);
                match (all.next(), all.next()) {
                    (Some((_, key)), None) => Some(key.clone()),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{jwk::Jwk, EncodingKey};

    use super::*;

    fn claims_until(expires: u64) -> Claims {
        let mut set = Map::new();
        set.insert("sub".into(), Value::from("ada"));
        set.insert("exp".into(), Value::from(expires));
        Claims::new(set, &[])
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_token_lives_until_its_ttl_or_its_exp() {
        let remembered = Remembered::new(Duration::from_secs(30));
        let far = unix_now() + 3600;
        remembered.insert("token-a", claims_until(far));
        let claims = remembered.get("token-a").expect("remembered");
        assert_eq!(claims.subject().map(|s| &**s), Some("ada"));
        // Only the exact text: not a prefix, not a longer token.
        assert!(remembered.get("token-").is_none());
        assert!(remembered.get("token-ab").is_none());
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(remembered.get("token-a").is_some(), "29 s of 30");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(remembered.get("token-a").is_none(), "the ttl ran out");
        // An `exp` 5 s away wins over the 30 s ttl.
        remembered.insert("token-b", claims_until(unix_now() + 5));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(remembered.get("token-b").is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(remembered.get("token-b").is_none(), "its exp passed");
    }

    #[test]
    fn a_token_in_a_taken_slot_replaces_the_one_there_and_debug_shows_no_token() {
        let remembered = Remembered::new(Duration::from_secs(30));
        let far = unix_now() + 3600;
        // Tokens until two share a slot: among VERIFIED_TOKENS + 1 of them, two must (any
        // two, not one given token's: that one's slot may stay free of all the others).
        let mut seen = std::collections::HashMap::new();
        let (first, other) = (0..=VERIFIED_TOKENS)
            .map(|i| format!("token-{i}"))
            .find_map(|t| {
                let slot = std::ptr::from_ref(remembered.slot(&t).1) as usize;
                seen.insert(slot, t.clone()).map(|before| (before, t))
            })
            .expect("two tokens share a slot");
        remembered.insert(&first, claims_until(far));
        assert!(remembered.get(&other).is_none(), "not the other's claims");
        remembered.insert(&other, claims_until(far));
        assert!(remembered.get(&other).is_some());
        assert!(remembered.get(&first).is_none(), "replaced");
        assert!(!format!("{remembered:?}").contains("token"));
    }

    fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(key, alg).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(jwk).expect("JSON")
    }

    /// A document with an RSA key `a`, an EC key `e`, and symmetric keys `s` and unnamed.
    fn key_set() -> KeySet {
        crate::install_jwt_crypto();
        let rsa =
            EncodingKey::from_rsa_pem(include_bytes!("../tests/keys/rsa-a.pem")).expect("RSA key");
        let ec =
            EncodingKey::from_ec_pem(include_bytes!("../tests/keys/ec-a.pem")).expect("EC key");
        let oct = |kid: Option<&str>| {
            // `k`: "a-test-secret-that-is-at-least-32-bytes-long", base64url.
            let mut key = serde_json::json!({
                "kty": "oct",
                "alg": "HS256",
                "k": "YS10ZXN0LXNlY3JldC10aGF0LWlzLWF0LWxlYXN0LTMyLWJ5dGVzLWxvbmc",
            });
            if let Some(kid) = kid {
                key["kid"] = Value::from(kid);
            }
            key
        };
        let document: JwkSet = serde_json::from_value(serde_json::json!({
            "keys": [
                jwk(&rsa, Algorithm::RS256, "a"),
                jwk(&ec, Algorithm::ES256, "e"),
                oct(Some("s")),
                oct(None),
            ]
        }))
        .expect("a JWKS document");
        KeySet::from_document(&document)
    }

    #[test]
    fn an_hs256_header_is_never_given_a_jwks_key() {
        let set = key_set();
        for kid in [Some("a"), Some("e"), Some("s"), None] {
            assert!(
                set.find(kid, Algorithm::HS256).is_none(),
                "HS256 with kid {kid:?}"
            );
        }
        // Nor is a key given to another algorithm than its own.
        assert!(set.find(Some("a"), Algorithm::ES256).is_none());
        assert!(set.find(Some("e"), Algorithm::RS256).is_none());
        // The asymmetric keys serve their own algorithm, by kid or as the only one of it.
        assert!(set.find(Some("a"), Algorithm::RS256).is_some());
        assert!(set.find(Some("e"), Algorithm::ES256).is_some());
        assert!(set.find(None, Algorithm::RS256).is_some());
        assert_eq!(
            set.keys.len() + set.unnamed.len(),
            2,
            "symmetric keys are dropped"
        );
    }
}
