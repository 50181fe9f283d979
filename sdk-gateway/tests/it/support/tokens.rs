//! Tokens signed as an identity provider would, and a JWKS server whose key set a test can
//! rotate.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{extract::State, routing::get, Json, Router};
use jsonwebtoken::{jwk::JwkSet, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The HS256 secret the tests configure.
pub const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

pub const RSA_A: &[u8] = include_bytes!("../../keys/rsa-a.pem");
pub const RSA_A_PUBLIC: &[u8] = include_bytes!("../../keys/rsa-a.pub.pem");
/// The same public key as DER (SubjectPublicKeyInfo), as an attacker may present it too.
pub const RSA_A_PUBLIC_DER: &[u8] = include_bytes!("../../keys/rsa-a.pub.der");
pub const RSA_B: &[u8] = include_bytes!("../../keys/rsa-b.pem");
pub const EC_A: &[u8] = include_bytes!("../../keys/ec-a.pem");

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Claims for `sub`, valid for an hour, with `extra` merged in.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({ "sub": sub, "exp": now() + 3600, "iat": now() });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    claims
}

/// An HS256 token signed with `secret`.
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    sdk_gateway::install_jwt_crypto();
    let key = EncodingKey::from_secret(secret).expect("a secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
}

/// An HS256 token signed with the configured secret.
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

fn rsa_key(pem: &[u8]) -> EncodingKey {
    sdk_gateway::install_jwt_crypto();
    EncodingKey::from_rsa_pem(pem).expect("an RSA key")
}

fn ec_key(pem: &[u8]) -> EncodingKey {
    sdk_gateway::install_jwt_crypto();
    EncodingKey::from_ec_pem(pem).expect("an EC key")
}

/// A token signed with the RSA key `pem`, naming `kid`.
pub fn rs256(pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &rsa_key(pem)).expect("sign")
}

/// A token signed with the P-256 key `pem`, naming `kid`.
pub fn es256(pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &ec_key(pem)).expect("sign")
}

/// The public JWK of a private key, named `kid`.
pub fn jwk(pem: &[u8], alg: Algorithm, kid: &str) -> Value {
    sdk_gateway::install_jwt_crypto();
    let key = match alg {
        Algorithm::ES256 => ec_key(pem),
        _ => rsa_key(pem),
    };
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).expect("a JWK");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).expect("JSON")
}

type KeyState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

async fn serve_keys(State((keys, fetches)): State<KeyState>) -> Json<Value> {
    fetches.fetch_add(1, Ordering::SeqCst);
    let keys = keys.lock().expect("keys").clone();
    Json(json!({ "keys": keys }))
}

/// A JWKS server: its key set can be replaced; it counts fetches.
#[derive(Clone)]
pub struct Jwks {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Jwks {
    pub async fn start(keys: Vec<Value>) -> Jwks {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let state = (keys.clone(), fetches.clone());
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_keys))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Jwks {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys,
            fetches,
        }
    }

    /// Publishes `keys` instead.
    pub fn rotate(&self, keys: Vec<Value>) {
        let set: JwkSet = serde_json::from_value(json!({ "keys": keys })).expect("a key set");
        assert!(!set.keys.is_empty());
        *self.keys.lock().expect("keys") = keys;
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
