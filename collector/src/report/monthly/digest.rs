//! Hex SHA-256 digests, shared by the document (`model.rs`: the definitions digest) and the
//! seals (`integrity.rs`). A leaf module: it imports neither, so the two do not import
//! each other.

use sha2::{Digest, Sha256};

pub use crate::seal::hex;

/// Lowercase hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
