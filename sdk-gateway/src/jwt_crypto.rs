//! JSON Web Token signatures on ring, the crypto library rustls already links here.
//!
//! jsonwebtoken 12 ships two providers, RustCrypto (`rust_crypto`) and aws-lc-rs
//! (`aws_lc_rs`), and lets a program install its own. This is that provider, on ring: with
//! either built-in one the gateway would link a second crypto stack beside rustls's (RSA,
//! P-256/P-384, Ed25519, SHA-2 and HMAC all over again, about thirty crates; or aws-lc's C
//! build). It follows jsonwebtoken's aws-lc-rs provider, whose API ring shares, algorithm by
//! algorithm.

use jsonwebtoken::{
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{Error, ErrorKind},
    jwk::{EllipticCurve, ThumbprintHash},
    signature, Algorithm, DecodingKey, DecodingKeyKind, EncodingKey,
};
use ring::{digest, hmac, rand::SystemRandom, signature as sig};

/// The provider: every algorithm jsonwebtoken names, signing and verifying.
static RING: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_component_from_private_key,
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's provider for this process. The gateway calls it before it
/// reads a key; a program that signs or reads tokens with jsonwebtoken itself, before it
/// starts the gateway, calls it first. A provider installed earlier (by the program, or by
/// an earlier call) stays.
pub fn install_jwt_crypto() {
    // `Err` only when one is installed already, which is what was asked for.
    let _ = RING.install_default();
}

fn rejected(kind: ErrorKind) -> Error {
    Error::from(kind)
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> signature::Error {
    signature::Error::from_source(e)
}

/// A key ready to sign with one algorithm.
enum SigningKey {
    Hmac(hmac::Key),
    Ecdsa(sig::EcdsaKeyPair),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ed25519(sig::Ed25519KeyPair),
}

struct Signer {
    algorithm: Algorithm,
    key: SigningKey,
}

impl signature::Signer<Vec<u8>> for Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Hmac(key) => Ok(hmac::sign(key, msg).as_ref().to_vec()),
            SigningKey::Ecdsa(pair) => Ok(pair.sign(&rng, msg).map_err(failed)?.as_ref().to_vec()),
            SigningKey::Rsa(pair, padding) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(*padding, &rng, msg, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
            SigningKey::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for Signer {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_padding(algorithm: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    let algorithm = *algorithm;
    if key.family() != algorithm.family() {
        return Err(rejected(ErrorKind::InvalidKeyFormat));
    }
    let der = key.as_bytes();
    let key = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let hmac = hmac_algorithm(algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
            SigningKey::Hmac(hmac::Key::new(hmac, der))
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let curve = match algorithm {
                Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                _ => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            };
            let pair = sig::EcdsaKeyPair::from_pkcs8(curve, der, &SystemRandom::new())
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            SigningKey::Ecdsa(pair)
        }
        Algorithm::EdDSA => SigningKey::Ed25519(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
        _ => {
            let padding = rsa_padding(algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
            let pair = sig::RsaKeyPair::from_der(der)
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            SigningKey::Rsa(pair, padding)
        }
    };
    Ok(Box::new(Signer { algorithm, key }))
}

/// A key ready to check one algorithm's signatures.
struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
    /// Made once for HMAC, whose key is a secret rather than a public key.
    hmac: Option<hmac::Key>,
}

impl Verifier {
    fn public(
        &self,
        params: &'static dyn sig::VerificationAlgorithm,
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), signature::Error> {
        let key = self.key.try_get_as_bytes().map_err(failed)?;
        sig::UnparsedPublicKey::new(params, key)
            .verify(msg, signature)
            .map_err(failed)
    }

    fn rsa(
        &self,
        params: &'static sig::RsaParameters,
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), signature::Error> {
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(params, der)
                .verify(msg, signature)
                .map_err(failed),
            DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
                .verify(params, msg, signature)
                .map_err(failed),
        }
    }
}

impl signature::Verifier<Vec<u8>> for Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        match self.algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let key = self.hmac.as_ref().ok_or_else(signature::Error::new)?;
                hmac::verify(key, msg, signature).map_err(failed)
            }
            Algorithm::ES256 => self.public(&sig::ECDSA_P256_SHA256_FIXED, msg, signature),
            Algorithm::ES384 => self.public(&sig::ECDSA_P384_SHA384_FIXED, msg, signature),
            Algorithm::EdDSA => self.public(&sig::ED25519, msg, signature),
            Algorithm::RS256 => self.rsa(&sig::RSA_PKCS1_2048_8192_SHA256, msg, signature),
            Algorithm::RS384 => self.rsa(&sig::RSA_PKCS1_2048_8192_SHA384, msg, signature),
            Algorithm::RS512 => self.rsa(&sig::RSA_PKCS1_2048_8192_SHA512, msg, signature),
            Algorithm::PS256 => self.rsa(&sig::RSA_PSS_2048_8192_SHA256, msg, signature),
            Algorithm::PS384 => self.rsa(&sig::RSA_PSS_2048_8192_SHA384, msg, signature),
            Algorithm::PS512 => self.rsa(&sig::RSA_PSS_2048_8192_SHA512, msg, signature),
            // An algorithm jsonwebtoken adds later verifies nothing until it is added here.
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for Verifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let algorithm = *algorithm;
    if key.family() != algorithm.family() {
        return Err(rejected(ErrorKind::InvalidKeyFormat));
    }
    let hmac = match hmac_algorithm(algorithm) {
        Some(hmac) => Some(hmac::Key::new(hmac, key.try_get_as_bytes()?)),
        None => None,
    };
    Ok(Box::new(Verifier {
        algorithm,
        key: key.clone(),
        hmac,
    }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair =
        sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

/// `n` and `e` of a DER `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`, RFC 8017). ring
/// checks such a key when it verifies with it, but does not hand out its parts, so they are
/// read here: two integers in one sequence, nothing else accepted.
fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let invalid = || Error::from(ErrorKind::InvalidRsaKey("not a DER RSAPublicKey".into()));
    let (body, rest) = der_element(der, 0x30).ok_or_else(invalid)?;
    let (n, body) = der_element(body, 0x02).ok_or_else(invalid)?;
    let (e, body) = der_element(body, 0x02).ok_or_else(invalid)?;
    if !rest.is_empty() || !body.is_empty() {
        return Err(invalid());
    }
    let unsigned = |int: &[u8]| int.strip_prefix(&[0]).unwrap_or(int).to_vec();
    Ok((unsigned(n), unsigned(e)))
}

/// One DER element with `tag` at the start of `input`: its contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    if found != tag {
        return None;
    }
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || input.len() < octets {
            return None;
        }
        let (len, rest) = input.split_at(octets);
        input = rest;
        len.iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (input.len() >= len).then(|| input.split_at(len))
}

fn ec_components_from_private_key(
    der: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    let (signing, curve, half) = match algorithm {
        Algorithm::ES256 => (
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(rejected(ErrorKind::InvalidEcdsaKey)),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    // An uncompressed point: 0x04, then x and y.
    match sig::KeyPair::public_key(&pair).as_ref().split_first() {
        Some((4, point)) if point.len() == 2 * half => {
            let (x, y) = point.split_at(half);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(rejected(ErrorKind::InvalidEcdsaKey)),
    }
}

fn ed_component_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, Error> {
    match curve {
        EllipticCurve::Ed25519 => {
            let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(sig::KeyPair::public_key(&pair).as_ref().to_vec())
        }
        _ => Err(rejected(ErrorKind::InvalidAlgorithm)),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(rejected(ErrorKind::InvalidAlgorithm)),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{decode, encode, jwk::Jwk, DecodingKey, EncodingKey, Header, Validation};
    use serde_json::{json, Value};

    use super::*;

    const RSA: &[u8] = include_bytes!("../tests/keys/rsa-a.pem");
    const RSA_PUB: &[u8] = include_bytes!("../tests/keys/rsa-a.pub.pem");
    const EC: &[u8] = include_bytes!("../tests/keys/ec-a.pem");

    fn claims() -> Value {
        json!({ "sub": "ada", "exp": jsonwebtoken::get_current_timestamp() + 60 })
    }

    /// Signs with `encoding`, checks with `decoding`, and checks that a changed signature
    /// fails: the provider's whole round trip for one algorithm.
    fn round_trip(algorithm: Algorithm, encoding: &EncodingKey, decoding: &DecodingKey) {
        install_jwt_crypto();
        let token = encode(&Header::new(algorithm), &claims(), encoding).expect("signed");
        let read = decode::<Value>(&token, decoding, &Validation::new(algorithm));
        assert_eq!(
            read.expect("verified").claims["sub"],
            "ada",
            "{algorithm:?}"
        );
        let (unsigned, signature) = token.rsplit_once('.').expect("three parts");
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{unsigned}.{flipped}{}", &signature[1..]);
        let refused = decode::<Value>(&forged, decoding, &Validation::new(algorithm));
        assert!(refused.is_err(), "{algorithm:?}: a forged signature passed");
    }

    #[test]
    fn every_family_signs_and_verifies_and_refuses_a_forgery() {
        let secret = EncodingKey::from_secret(b"a secret of some length").expect("secret");
        let check = DecodingKey::from_secret(b"a secret of some length").expect("secret");
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            round_trip(algorithm, &secret, &check);
        }
        let rsa = EncodingKey::from_rsa_pem(RSA).expect("rsa");
        let rsa_check = DecodingKey::from_rsa_pem(RSA_PUB).expect("public key");
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            round_trip(algorithm, &rsa, &rsa_check);
        }
        let ec = EncodingKey::from_ec_pem(EC).expect("ec");
        let jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("a JWK");
        round_trip(
            Algorithm::ES256,
            &ec,
            &DecodingKey::from_jwk(&jwk).expect("key"),
        );
    }

    #[test]
    fn a_jwk_from_the_private_key_or_the_public_der_verifies() {
        install_jwt_crypto();
        let rsa = EncodingKey::from_rsa_pem(RSA).expect("rsa");
        let jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).expect("a JWK");
        round_trip(
            Algorithm::RS256,
            &rsa,
            &DecodingKey::from_jwk(&jwk).expect("key"),
        );
        // The public key as jsonwebtoken keeps it: a DER RSAPublicKey.
        let public = DecodingKey::from_rsa_pem(RSA_PUB).expect("public key");
        let der = public.try_get_as_bytes().expect("DER");
        let (n, e) = rsa_components_from_public_key(der).expect("n and e");
        assert_eq!(
            (n, e),
            rsa_components_from_private_key(rsa.as_bytes()).expect("n and e")
        );
        let public_jwk = Jwk::from_decoding_key(&public, Some(Algorithm::RS256)).expect("a JWK");
        round_trip(
            Algorithm::RS256,
            &rsa,
            &DecodingKey::from_jwk(&public_jwk).expect("key"),
        );
        assert!(
            rsa_components_from_public_key(&der[..40]).is_err(),
            "cut short"
        );
        assert!(
            rsa_components_from_public_key(b"\x02\x01\x01").is_err(),
            "not a sequence"
        );
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        install_jwt_crypto();
        let secret = DecodingKey::from_secret(b"secret").expect("secret");
        assert!(new_verifier(&Algorithm::RS256, &secret).is_err());
        let rsa = EncodingKey::from_rsa_pem(RSA).expect("rsa");
        assert!(new_signer(&Algorithm::HS256, &rsa).is_err());
    }
}
