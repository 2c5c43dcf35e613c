//! Agent signing keys: Ed25519 (RFC 8032), their text forms, fingerprints, and the signature
//! over a batch digest.
//!
//! Text forms (docs/wire.md, "Agent keys"):
//! - public key: `ed25519:` + standard base64 (with padding) of the 32 key bytes;
//! - fingerprint: `SHA256:` + lowercase hex of the SHA-256 of those 32 bytes (the style of
//!   the collector's report key, docs/reports.md);
//! - secret key file: the 32-byte seed as 64 hex digits, or a PKCS#8 PEM Ed25519 key
//!   (`openssl genpkey -algorithm ed25519`);
//! - signature: standard base64 of the 64 signature bytes; digests: lowercase hex.
//!
//! Invariant: a signature is over the 32 raw bytes of the batch digest, and verification is
//! strict (`verify_strict`: no small-order keys, no malleable signatures).

use base64ct::{Base64, Encoding};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::canonical::BatchDigest;

pub use ed25519_dalek::SigningKey as SecretKey;

/// Prefix of a public key's text form.
pub const PUBLIC_PREFIX: &str = "ed25519:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an agent public key: {0}; expected `ed25519:` and the base64 of 32 bytes (what `attest-agent key show` prints)"
    )]
    Public(String),
    #[error(
        "not an Ed25519 secret key: {0}; expected 64 hex digits (the seed) or a PKCS#8 PEM key (openssl genpkey -algorithm ed25519)"
    )]
    Secret(String),
}

/// An agent's public key, as the collector pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the `ed25519:<base64>` form.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let t = text.trim();
        let b64 = t
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| KeyError::Public(format!("{t:?} does not start with `ed25519:`")))?;
        let raw =
            Base64::decode_vec(b64).map_err(|e| KeyError::Public(format!("bad base64 ({e})")))?;
        PublicKey::from_bytes(&raw)
    }

    /// From the 32 raw key bytes (as the store keeps them).
    pub fn from_bytes(raw: &[u8]) -> Result<PublicKey, KeyError> {
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError::Public(format!("{} bytes instead of 32", raw.len())))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| KeyError::Public(e.to_string()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// `SHA256:` + hex of the SHA-256 of the 32 key bytes.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", hex(&Sha256::digest(self.as_bytes())))
    }

    /// Whether `signature` is this key's signature over `digest`.
    pub fn verifies(&self, digest: &BatchDigest, signature: &[u8; 64]) -> bool {
        self.0
            .verify_strict(digest, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PUBLIC_PREFIX}{}",
            Base64::encode_string(self.as_bytes())
        )
    }
}

/// The public half of `key`.
pub fn public_of(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key())
}

/// A secret key from its 32-byte seed (the agent draws it from the OS's random source).
pub fn secret_from_seed(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

/// Reads a secret key file's text: 64 hex digits or PKCS#8 PEM.
pub fn parse_secret(text: &str) -> Result<SigningKey, KeyError> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(t).map_err(|e| KeyError::Secret(e.to_string()));
    }
    let seed: [u8; 32] = unhex(t)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Secret("neither PEM nor 64 hex digits".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text the agent writes into a key file it creates: the seed as hex and a newline.
pub fn secret_text(key: &SigningKey) -> String {
    format!("{}\n", hex(key.as_bytes()))
}

/// The signature of `key` over `digest`.
pub fn sign(key: &SigningKey, digest: &BatchDigest) -> [u8; 64] {
    key.sign(digest).to_bytes()
}

/// Standard base64 of a signature.
pub fn signature_text(sig: &[u8; 64]) -> String {
    Base64::encode_string(sig)
}

/// A signature from its base64 text; `None` when it is not 64 bytes of base64.
pub fn parse_signature(text: &str) -> Option<[u8; 64]> {
    Base64::decode_vec(text).ok()?.try_into().ok()
}

/// Lowercase hex of `bytes` (digests on the wire and in reports).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex text (either case); `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A digest from its hex text.
pub fn parse_digest(s: &str) -> Option<BatchDigest> {
    unhex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        secret_from_seed(&[7; 32])
    }

    #[test]
    fn public_key_text_round_trips_and_has_a_fingerprint() {
        let pk = public_of(&key());
        let text = pk.to_string();
        assert!(
            text.starts_with("ed25519:") && text.len() == 8 + 44,
            "{text}"
        );
        assert_eq!(PublicKey::parse(&text), Ok(pk));
        assert_eq!(PublicKey::parse(&format!(" {text}\n")), Ok(pk));
        let fp = pk.fingerprint();
        assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 64, "{fp}");
    }

    #[test]
    fn bad_public_keys_are_refused_with_a_reason() {
        for bad in ["", "ed25519:", "ed25519:AAAA", "rsa:AAAA", "ed25519:!!!"] {
            let err = PublicKey::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("ed25519:"), "{err}");
        }
    }

    #[test]
    fn secret_text_round_trips_and_pem_is_read() {
        let k = key();
        assert_eq!(
            parse_secret(&secret_text(&k)).expect("hex").as_bytes(),
            k.as_bytes()
        );
        // RFC 8410 example key (section 10.3).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        assert!(parse_secret(pem).is_ok());
        assert!(parse_secret("abc").is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_digest_and_key() {
        let k = key();
        let d = [1u8; 32];
        let sig = sign(&k, &d);
        let pk = public_of(&k);
        assert!(pk.verifies(&d, &sig));
        assert!(!pk.verifies(&[2u8; 32], &sig));
        let other = public_of(&secret_from_seed(&[8; 32]));
        assert!(!other.verifies(&d, &sig));
        assert_eq!(parse_signature(&signature_text(&sig)), Some(sig));
        assert_eq!(parse_digest(&hex(&d)), Some(d));
    }
}
