//! The Merkle tree of a sealed month: RFC 6962's Merkle Tree Hash (section 2.1) over SHA-256,
//! with inclusion proofs, so that an auditor holding the signed root can check that one
//! batch digest (or one definition, one maintenance window) is part of the month without the
//! rest of it, and any tool that implements RFC 6962 (Certificate Transparency's) can
//! recompute the root from docs/reports.md alone.
//!
//! Invariants:
//! - Leaves are hashed as `SHA-256(0x00 || leaf)`, inner nodes as `SHA-256(0x01 || left ||
//!   right)`: a leaf can never be passed off as an inner node (second-preimage resistance).
//! - The split is RFC 6962's: the left subtree holds the largest power of two strictly
//!   smaller than the number of leaves; no leaf is duplicated or promoted.
//! - The empty tree's hash is `SHA-256("")`.
//! - Pure functions: no I/O, no clock.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

const LEAF: u8 = 0x00;
const NODE: u8 = 0x01;

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly smaller than `n` (`n ≥ 2`).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The Merkle Tree Hash of `leaves` (raw leaf bytes, in order).
pub fn root<L: AsRef<[u8]>>(leaves: &[L]) -> Hash {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_of_hashes(&hashes)
}

/// The Merkle Tree Hash over leaves already hashed with [`leaf_hash`].
pub fn root_of_hashes(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        many => {
            let k = split(many.len());
            node_hash(&root_of_hashes(&many[..k]), &root_of_hashes(&many[k..]))
        }
    }
}

/// The inclusion proof (RFC 6962's audit path) of leaf `index` among `leaf_hashes`: the
/// sibling hashes from the leaf up to the root. `None` when `index` is out of range.
pub fn inclusion_proof(leaf_hashes: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaf_hashes.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(leaf_hashes, index, &mut path);
    Some(path)
}

/// Appends the path bottom-up: the sibling subtree's hash is pushed after the path inside
/// the leaf's own subtree.
fn collect_path(hashes: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if hashes.len() <= 1 {
        return;
    }
    let k = split(hashes.len());
    if index < k {
        collect_path(&hashes[..k], index, path);
        path.push(root_of_hashes(&hashes[k..]));
    } else {
        collect_path(&hashes[k..], index - k, path);
        path.push(root_of_hashes(&hashes[..k]));
    }
}

/// Whether `proof` shows that `leaf_hash` is leaf `index` of a tree of `size` leaves whose
/// root is `root` (RFC 9162 section 2.1.3.2, the verification of RFC 6962's audit path).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: usize,
    size: usize,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode % 2 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode % 2 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The eight leaves of Certificate Transparency's reference tests.
    fn ct_leaves() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..0x58).collect(),
            (0x60..0x70).collect(),
        ]
    }

    /// Roots of the first n reference leaves, as published with RFC 6962 implementations
    /// (and recomputed independently with Python's hashlib).
    #[test]
    fn roots_match_the_reference_vectors() {
        let leaves = ct_leaves();
        let want = [
            (
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                1,
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            ),
            (
                2,
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            ),
            (
                3,
                "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            ),
            (
                5,
                "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            ),
            (
                8,
                "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            ),
        ];
        for (n, root_hex) in want {
            assert_eq!(hex(&root(&leaves[..n])), root_hex, "{n} leaves");
        }
    }

    /// Every leaf of every tree size up to 40 proves its inclusion; a proof fails for another
    /// leaf, another index, another size, another root, or with one hash flipped.
    #[test]
    fn every_leaf_proves_its_inclusion_and_nothing_else_does() {
        for size in 1..=40usize {
            let hashes: Vec<Hash> = (0..size)
                .map(|i| leaf_hash(format!("batch {i}").as_bytes()))
                .collect();
            let r = root_of_hashes(&hashes);
            for (i, h) in hashes.iter().enumerate() {
                let proof = inclusion_proof(&hashes, i).expect("in range");
                assert!(verify_inclusion(h, i, size, &proof, &r), "{size}/{i}");
                let other = leaf_hash(b"not in the tree");
                assert!(!verify_inclusion(&other, i, size, &proof, &r));
                if size > 1 {
                    assert!(!verify_inclusion(h, (i + 1) % size, size, &proof, &r));
                }
                let mut bad_root = r;
                bad_root[0] ^= 1;
                assert!(!verify_inclusion(h, i, size, &proof, &bad_root));
                for j in 0..proof.len() {
                    let mut bent = proof.clone();
                    bent[j][31] ^= 0x80;
                    assert!(!verify_inclusion(h, i, size, &bent, &r), "{size}/{i}/{j}");
                }
            }
            assert_eq!(inclusion_proof(&hashes, size), None);
        }
    }

    /// A leaf cannot pose as an inner node: the two children of a two-leaf tree, concatenated
    /// and given as one leaf, give another root.
    #[test]
    fn a_leaf_is_never_an_inner_node() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let two = root_of_hashes(&[a, b]);
        let mut glued = a.to_vec();
        glued.extend_from_slice(&b);
        assert_ne!(root(&[glued]), two);
    }
}
