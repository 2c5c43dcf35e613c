//! Body decoding: bounded zstd decompression (a zstd bomb is refused, not inflated) and
//! JSON parsing that names the failing field.

use std::io::Read;

use attest_config::wire::{Batch, PROTOCOL_VERSION, PROTOCOL_VERSION_UNSIGNED};

use super::Rejection;

pub(crate) fn decompress(
    body: &[u8],
    encoding: Option<&str>,
    limit: u64,
) -> Result<Vec<u8>, Rejection> {
    // Content-codings are case-insensitive (RFC 9110 §8.4.1): `ZSTD` is `zstd`.
    let coding = encoding.map(|e| e.trim().to_ascii_lowercase());
    match coding.as_deref() {
        None | Some("" | "identity") => {
            if body.len() as u64 > limit {
                return Err(too_large(limit));
            }
            Ok(body.to_vec())
        }
        Some("zstd") => {
            // A frame that declares its size within the limit (the agent's do) is
            // decompressed in one call into a buffer of exactly that size; one that holds
            // more than it declared fails that call and is read as a stream below. A size
            // far beyond what the body could plausibly hold is not allocated up front.
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body)
                && size <= limit
                && size <= (body.len() as u64).saturating_mul(256)
                && let Ok(out) = zstd::bulk::decompress(body, size as usize)
            {
                return Ok(out);
            }
            let dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| Rejection::new(400, format!("invalid zstd body: {e}")))?;
            let mut out = Vec::new();
            // Read one byte past the limit to tell "exactly at the limit" from "over it".
            dec.take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| Rejection::new(400, format!("invalid zstd body: {e}")))?;
            if out.len() as u64 > limit {
                return Err(too_large(limit));
            }
            Ok(out)
        }
        Some(_) => Err(Rejection::new(
            415,
            format!(
                "unsupported Content-Encoding {:?}: send zstd or none",
                encoding.unwrap_or_default().trim()
            ),
        )),
    }
}

fn too_large(limit: u64) -> Rejection {
    Rejection::new(
        413,
        format!("decompressed body exceeds {limit} bytes; send smaller batches"),
    )
}

/// Whether this collector speaks protocol version `v`: 2 (signed) and 1 (unsigned).
fn known_version(v: u64) -> bool {
    v == u64::from(PROTOCOL_VERSION) || v == u64::from(PROTOCOL_VERSION_UNSIGNED)
}

/// The batch `json` holds. An accepted batch is parsed once, with the plain deserializer;
/// only a refused one is parsed again by [`explain`], to say what is wrong and where.
/// Version 2 requires `evidence`, version 1 refuses it.
pub(crate) fn parse(json: &[u8]) -> Result<Batch, Rejection> {
    match serde_json::from_slice::<Batch>(json) {
        Ok(batch) if known_version(u64::from(batch.version)) => {
            match (batch.version == PROTOCOL_VERSION, batch.evidence.is_some()) {
                (true, true) | (false, false) => Ok(batch),
                (true, false) => Err(Rejection::new(
                    400,
                    "a version 2 batch must carry `evidence` (send version 1 for an unsigned batch)",
                )
                .field("evidence")),
                (false, true) => Err(Rejection::new(
                    400,
                    "`evidence` needs protocol version 2 (this batch says version 1)",
                )
                .field("evidence")),
            }
        }
        _ => explain(json),
    }
}

/// The refusal of a body [`parse`] could not accept: the protocol version first, then the
/// path of the first field at fault (slower passes, paid only by refused batches).
fn explain(json: &[u8]) -> Result<Batch, Rejection> {
    // Check the version first so an unknown version gets a clear answer, not a field error.
    #[derive(serde::Deserialize)]
    struct Probe {
        version: Option<serde_json::Value>,
    }
    let v: Probe = serde_json::from_slice(json)
        .map_err(|e| Rejection::new(400, format!("body is not a JSON object: {e}")))?;
    match v.version.as_ref().and_then(serde_json::Value::as_u64) {
        Some(n) if known_version(n) => {}
        Some(n) => {
            return Err(Rejection::new(400, format!("unsupported protocol version {n}; this collector speaks versions {PROTOCOL_VERSION_UNSIGNED} and {PROTOCOL_VERSION}")).field("version"));
        }
        None => {
            return Err(
                Rejection::new(400, "missing or non-integer protocol version").field("version"),
            );
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let r = Rejection::new(400, format!("invalid batch: {}", e.inner()));
        // "." is the root: no single field is at fault (e.g. a key given twice at the top).
        if path == "." { r } else { r.field(path) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame that declares its size is read in one call; one that lies about its size
    /// (or holds several frames) is still read whole, and still bounded by the limit.
    #[test]
    fn sized_frames_and_frames_that_lie() {
        let json = br#"{"version":1}"#.repeat(100);
        let sized = zstd::bulk::compress(&json, 3).unwrap();
        assert_eq!(decompress(&sized, Some("zstd"), 1 << 20).unwrap(), json);
        let mut two = sized.clone();
        two.extend_from_slice(&sized);
        assert_eq!(
            decompress(&two, Some("zstd"), 1 << 20).unwrap(),
            json.repeat(2)
        );
        assert_eq!(
            decompress(&two, Some("zstd"), json.len() as u64 + 1)
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn zstd_bomb_is_refused() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
        assert!(bomb.len() < 4096);
        let e = decompress(&bomb, Some("zstd"), 1 << 20).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(
            decompress(&bomb, Some("zstd"), 10 << 20).unwrap().len(),
            10 << 20
        );
    }

    #[test]
    fn names_the_failing_field() {
        let j = br#"{"version":1,"agent":"a","seq":1,"sent_at":"2026-10-01T00:00:00Z","measurements":[{"check":"c","ts":"nope","ok":true}]}"#;
        let e = parse(j).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.field.as_deref(), Some("measurements[0].ts"));
        let e = parse(br#"{"version":3}"#).unwrap_err();
        assert!(
            e.reason.contains("unsupported protocol version 3"),
            "{}",
            e.reason
        );
        assert_eq!(e.field.as_deref(), Some("version"));
        // Version 2 needs evidence; version 1 must not carry it.
        let v2 = br#"{"version":2,"agent":"a","seq":1,"sent_at":"2026-10-01T00:00:00Z"}"#;
        assert_eq!(parse(v2).unwrap_err().field.as_deref(), Some("evidence"));
        let v1 = br#"{"version":1,"agent":"a","seq":1,"sent_at":"2026-10-01T00:00:00Z","evidence":{"digest":"00","key":"k","signature":"s"}}"#;
        assert_eq!(parse(v1).unwrap_err().field.as_deref(), Some("evidence"));
        let e = parse(b"[1,2]").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(decompress(b"x", Some("br"), 10).unwrap_err().status, 415);
        // Content-codings are case-insensitive.
        let z = zstd::bulk::compress(b"{}", 3).unwrap();
        for coding in ["ZSTD", "Zstd", " zstd "] {
            assert_eq!(decompress(&z, Some(coding), 10).unwrap(), b"{}", "{coding}");
        }
        assert_eq!(decompress(b"{}", Some("IDENTITY"), 10).unwrap(), b"{}");
    }
}
