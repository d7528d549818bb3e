use std::cell::RefCell;
use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn h(hex_str: &str) -> Hash {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn hs(hex_strs: &[&str]) -> Vec<Hash> {
    hex_strs.iter().map(|s| h(s)).collect()
}

/// A tree of `n` leaves whose data are the leaf numbers, big-endian.
fn numbered_tree(n: u64) -> Tree {
    let mut tree = Tree::new();
    for i in 0..n {
        tree.push(&i.to_be_bytes());
    }
    tree
}

fn flip(hash: &Hash, byte: usize, mask: u8) -> Hash {
    let mut out = *hash;
    out[byte] ^= mask;
    out
}

// ---------------------------------------------------------------------------------------------
// Certificate Transparency test vectors.
//
// Every hex string below is copied from github.com/transparency-dev/merkle (the Go successor of
// the google/certificate-transparency reference code, used by Trillian):
// - testonly/constants.go: `LeafInputs`, `NodeHashes`, `RootHashes`, `EmptyRootHash`;
// - testonly/reference_test.go: `TestRefInclusionProof`, `TestRefConsistencyProof`;
// - proof/verify_test.go: `inclusionProofs` (1-based leaf numbers there, 0-based here) and
//   `consistencyProofs` (the extra 6 -> 7 case);
// - rfc6962/rfc6962_test.go: `TestRFC6962Hasher` (empty root, empty leaf, leaf "L123456").
// ---------------------------------------------------------------------------------------------

const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots by tree size, from the empty tree to all 8 leaves.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Every complete subtree of the 8-leaf tree, by level.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// (leaf index, tree size, PATH).
const INCLUSION_VECTORS: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, PROOF).
const CONSISTENCY_VECTORS: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn ct_leaves() -> Vec<Vec<u8>> {
    LEAF_INPUTS
        .iter()
        .map(|s| hex::decode(s).unwrap())
        .collect()
}

fn ct_tree() -> Tree {
    let mut tree = Tree::new();
    for leaf in ct_leaves() {
        tree.push(&leaf);
    }
    tree
}

#[test]
fn ct_hash_functions() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    // The empty tree's root is not the hash of an empty leaf.
    assert_ne!(empty_root(), leaf_hash(b""));
}

#[test]
fn ct_roots_while_growing() {
    let mut tree = Tree::new();
    assert_eq!(tree.root(), h(ROOTS[0]));
    for (i, leaf) in ct_leaves().iter().enumerate() {
        assert_eq!(tree.push(leaf), i as u64);
        let size = i + 1;
        assert_eq!(tree.len(), size as u64);
        assert_eq!(hex::encode(tree.root()), ROOTS[size], "root of {size}");
        for (past, root) in ROOTS.iter().enumerate().take(size + 1) {
            assert_eq!(
                hex::encode(tree.root_at(past as u64).unwrap()),
                *root,
                "root_at({past}) with {size} leaves"
            );
        }
    }
}

#[test]
fn ct_every_complete_subtree_is_stored() {
    let tree = ct_tree();
    let want: Vec<Vec<Hash>> = NODE_HASHES.iter().map(|level| hs(level)).collect();
    assert_eq!(tree.levels, want);
    for (i, leaf) in want[0].iter().enumerate() {
        assert_eq!(tree.leaf(i as u64), Some(*leaf));
    }
    assert_eq!(tree.leaf(8), None);
}

#[test]
fn ct_inclusion_proofs() {
    let tree = ct_tree();
    let leaves = ct_leaves();
    for &(index, size, want) in INCLUSION_VECTORS {
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof, hs(want), "PATH({index}, D[{size}])");
        let leaf = leaf_hash(&leaves[index as usize]);
        verify_inclusion(&leaf, index, size, &proof, &h(ROOTS[size as usize])).unwrap();
        assert_inclusion_rejects_tampering(&leaf, index, size, &proof, &h(ROOTS[size as usize]));
    }
}

#[test]
fn ct_consistency_proofs() {
    let tree = ct_tree();
    for &(old, new, want) in CONSISTENCY_VECTORS {
        let proof = tree.consistency_proof(old, new).unwrap();
        assert_eq!(proof, hs(want), "PROOF({old}, D[{new}])");
        let (old_root, new_root) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
        if old < new {
            assert_consistency_rejects_tampering(old, new, &old_root, &new_root, &proof);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A reference written straight from the text of RFC 6962 §2.1 (over leaf hashes, so that
// MTH of one entry is that entry), compared with the incremental tree.
// ---------------------------------------------------------------------------------------------

/// "k be the largest power of two smaller than n (i.e., k < n <= 2k)".
fn rfc_k(n: usize) -> usize {
    let mut k = 1;
    while 2 * k < n {
        k *= 2;
    }
    k
}

/// The RFC's three definitions over `D[lo:hi]` of one list of leaf hashes. The recursion is the
/// RFC's; the memo only spares recomputing MTH of ranges shared by thousands of proofs.
struct Rfc<'a> {
    d: &'a [Hash],
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

impl<'a> Rfc<'a> {
    fn new(d: &'a [Hash]) -> Self {
        Self {
            d,
            memo: RefCell::default(),
        }
    }

    /// MTH(D[lo:hi]).
    fn mth(&self, lo: usize, hi: usize) -> Hash {
        if let Some(hash) = self.memo.borrow().get(&(lo, hi)) {
            return *hash;
        }
        let hash = match hi - lo {
            0 => empty_root(),
            1 => self.d[lo],
            n => {
                let k = rfc_k(n);
                node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
            }
        };
        self.memo.borrow_mut().insert((lo, hi), hash);
        hash
    }

    /// PATH(m, D[lo:hi]).
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n == 1 {
            return Vec::new();
        }
        let k = rfc_k(n);
        let (mut path, sibling) = if m < k {
            (self.path(m, lo, lo + k), self.mth(lo + k, hi))
        } else {
            (self.path(m - k, lo + k, hi), self.mth(lo, lo + k))
        };
        path.push(sibling);
        path
    }

    /// PROOF(m, D[lo:hi]) = SUBPROOF(m, D[lo:hi], true). The RFC defines it for 0 < m; for
    /// m = 0 this crate's convention is the empty proof (the recursion would not terminate).
    fn proof(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        if m == 0 {
            return Vec::new();
        }
        self.subproof(m, lo, hi, true)
    }

    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![self.mth(lo, hi)]
            };
        }
        let k = rfc_k(n);
        let (mut proof, other) = if m <= k {
            (self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi))
        } else {
            (
                self.subproof(m - k, lo + k, hi, false),
                self.mth(lo, lo + k),
            )
        };
        proof.push(other);
        proof
    }
}

#[test]
fn reference_agrees_on_ct_vectors() {
    // The reference itself must reproduce the published vectors, or comparing with it is moot.
    let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
    let rfc = Rfc::new(&leaves);
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(rfc.mth(0, size), h(root));
    }
    for &(index, size, want) in INCLUSION_VECTORS {
        assert_eq!(rfc.path(index as usize, 0, size as usize), hs(want));
    }
    for &(old, new, want) in CONSISTENCY_VECTORS {
        assert_eq!(rfc.proof(old as usize, 0, new as usize), hs(want));
    }
}

#[test]
fn tree_matches_rfc_reference_up_to_300_leaves() {
    const MAX: usize = 300;
    let tree = numbered_tree(MAX as u64);
    let leaves: Vec<Hash> = (0..MAX).map(|i| tree.leaf(i as u64).unwrap()).collect();
    let rfc = Rfc::new(&leaves);
    let mut compared = 0;
    for n in 0..=MAX {
        let size = n as u64;
        assert_eq!(tree.root_at(size).unwrap(), rfc.mth(0, n), "MTH(D[{n}])");
        for m in 0..n {
            let path = tree.inclusion_proof(m as u64, size).unwrap();
            assert_eq!(path, rfc.path(m, 0, n), "PATH({m}, D[{n}])");
            compared += 1;
        }
        for m in 0..=n {
            let proof = tree.consistency_proof(m as u64, size).unwrap();
            assert_eq!(proof, rfc.proof(m, 0, n), "PROOF({m}, D[{n}])");
            compared += 1;
        }
    }
    assert_eq!(compared, (0..=MAX).map(|n| 2 * n + 1).sum::<usize>());
}

// ---------------------------------------------------------------------------------------------
// A larger tree: everything honest verifies, everything tampered with fails.
// ---------------------------------------------------------------------------------------------

fn assert_inclusion_rejects_tampering(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) {
    let mut probes: Vec<(String, Hash, u64, u64, Vec<Hash>, Hash)> = Vec::new();
    let mut probe = |desc: &str, leaf: Hash, index: u64, size: u64, proof: Vec<Hash>, root| {
        probes.push((desc.to_owned(), leaf, index, size, proof, root));
    };
    let p = proof.to_vec();
    probe(
        "other leaf",
        leaf_hash(b"not in the log"),
        index,
        size,
        p.clone(),
        *root,
    );
    probe("leaf bit", flip(leaf, 31, 1), index, size, p.clone(), *root);
    probe("index ^ 1", *leaf, index ^ 1, size, p.clone(), *root);
    probe("index + 1", *leaf, index + 1, size, p.clone(), *root);
    if index > 0 {
        probe("index - 1", *leaf, index - 1, size, p.clone(), *root);
    }
    // Sizes that change the tree's height. (A size that keeps both the height and the leaf's
    // left/right turns, e.g. leaf 0 of size 5 against size 8, computes the same root, so the
    // proof binds the leaf to the root, and the signed (size, root) pair binds the size.)
    probe("size * 2", *leaf, index, size * 2, p.clone(), *root);
    probe("size / 2", *leaf, index, size / 2, p.clone(), *root);
    probe(
        "root bit",
        *leaf,
        index,
        size,
        p.clone(),
        flip(root, 0, 0x80),
    );
    probe("empty root", *leaf, index, size, p.clone(), empty_root());
    if leaf != root {
        // (In a tree of one leaf the leaf hash is the root.)
        probe("leaf as root", *leaf, index, size, p.clone(), *leaf);
    }
    let mut longer = p.clone();
    longer.push(*root);
    probe("trailing root", *leaf, index, size, longer, *root);
    let mut longer = p.clone();
    longer.push([0; 32]);
    probe("trailing zeros", *leaf, index, size, longer, *root);
    let mut longer = p.clone();
    longer.insert(0, *leaf);
    probe("preceding leaf", *leaf, index, size, longer, *root);
    if !p.is_empty() {
        probe(
            "truncated",
            *leaf,
            index,
            size,
            p[..p.len() - 1].to_vec(),
            *root,
        );
        probe("first dropped", *leaf, index, size, p[1..].to_vec(), *root);
    }
    for i in 0..p.len() {
        for (byte, mask) in [(0, 0x08), (31, 0x01)] {
            let mut bad = p.clone();
            bad[i] = flip(&bad[i], byte, mask);
            probe(
                &format!("proof[{i}] byte {byte} flipped"),
                *leaf,
                index,
                size,
                bad,
                *root,
            );
        }
    }
    for (desc, leaf, index, size, proof, root) in probes {
        assert!(
            verify_inclusion(&leaf, index, size, &proof, &root).is_err(),
            "inclusion of leaf {index} in size {size} verified despite: {desc}"
        );
    }
}

fn assert_consistency_rejects_tampering(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) {
    let mut probes: Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> = Vec::new();
    let mut probe = |desc: &str, old: u64, new: u64, r1: Hash, r2: Hash, proof: Vec<Hash>| {
        probes.push((desc.to_owned(), old, new, r1, r2, proof));
    };
    let (r1, r2, p) = (*old_root, *new_root, proof.to_vec());
    probe("old - 1", old - 1, new, r1, r2, p.clone());
    probe("old + 1", old + 1, new, r1, r2, p.clone());
    probe("old ^ 2", old ^ 2, new, r1, r2, p.clone());
    probe("new * 2", old, new * 2, r1, r2, p.clone());
    probe("new / 2", old, new / 2, r1, r2, p.clone());
    probe("old root bit", old, new, flip(&r1, 0, 0x10), r2, p.clone());
    probe("new root bit", old, new, r1, flip(&r2, 31, 0x01), p.clone());
    probe("swapped roots", old, new, r2, r1, p.clone());
    probe("empty proof", old, new, r1, r2, Vec::new());
    for (desc, extra) in [("root1", r1), ("root2", r2), ("zeros", [0; 32])] {
        let mut longer = p.clone();
        longer.push(extra);
        probe(&format!("trailing {desc}"), old, new, r1, r2, longer);
        let mut longer = p.clone();
        longer.insert(0, extra);
        probe(&format!("preceding {desc}"), old, new, r1, r2, longer);
    }
    let mut longer = p.clone();
    longer.insert(0, p[0]);
    probe("preceding proof[0]", old, new, r1, r2, longer);
    probe("truncated", old, new, r1, r2, p[..p.len() - 1].to_vec());
    probe("first dropped", old, new, r1, r2, p[1..].to_vec());
    for i in 0..p.len() {
        for (byte, mask) in [(0, 0x10), (31, 0x80)] {
            let mut bad = p.clone();
            bad[i] = flip(&bad[i], byte, mask);
            probe(
                &format!("proof[{i}] byte {byte} flipped"),
                old,
                new,
                r1,
                r2,
                bad,
            );
        }
    }
    for (desc, old, new, r1, r2, proof) in probes {
        assert!(
            verify_consistency(old, new, &r1, &r2, &proof).is_err(),
            "consistency {old} -> {new} verified despite: {desc}"
        );
    }
}

const BIG: u64 = 5_000;

#[test]
fn every_inclusion_proof_verifies_in_a_5000_leaf_tree() {
    let tree = numbered_tree(BIG);
    for size in [1, 2, 3, 1_000, 1_024, 1_025, 4_097, BIG] {
        let root = tree.root_at(size).unwrap();
        for index in 0..size {
            let leaf = tree.leaf(index).unwrap();
            let proof = tree.inclusion_proof(index, size).unwrap();
            assert!(proof.len() <= 13, "{index}/{size}: {} hashes", proof.len());
            verify_inclusion(&leaf, index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {index} of {size}: {e}"));
            // Tampering, for a sample (and always the first and last leaves).
            if index % 97 == 0 || index + 1 == size {
                assert_inclusion_rejects_tampering(&leaf, index, size, &proof, &root);
            }
        }
    }
}

#[test]
fn consistency_proofs_verify_in_a_5000_leaf_tree() {
    let tree = numbered_tree(BIG);
    let roots: Vec<Hash> = (0..=BIG).map(|s| tree.root_at(s).unwrap()).collect();
    let mut checked = 0;
    for old in (0..=BIG)
        .step_by(13)
        .chain([1, 2, 3, 4, 1_023, 1_024, 1_025, BIG - 1])
    {
        for new in [
            old,
            old + 1,
            old + 2,
            old + 17,
            1_024,
            2_048,
            2_049,
            4_999,
            BIG,
        ] {
            if new < old || new > BIG {
                continue;
            }
            let (r1, r2) = (roots[old as usize], roots[new as usize]);
            let proof = tree.consistency_proof(old, new).unwrap();
            verify_consistency(old, new, &r1, &r2, &proof)
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
            checked += 1;
            if 0 < old && old < new && (old % 91 == 0 || old < 5 || new == BIG) {
                assert_consistency_rejects_tampering(old, new, &r1, &r2, &proof);
            }
        }
    }
    assert!(checked > 2_500, "only {checked} pairs");
}

#[test]
fn consistency_edge_conventions() {
    let tree = numbered_tree(10);
    let (r0, r5, r10) = (
        empty_root(),
        tree.root_at(5).unwrap(),
        tree.root_at(10).unwrap(),
    );
    // From the empty tree: empty proof, and the old root must be the empty root.
    assert_eq!(tree.consistency_proof(0, 10).unwrap(), Vec::<Hash>::new());
    assert_eq!(tree.consistency_proof(0, 0).unwrap(), Vec::<Hash>::new());
    verify_consistency(0, 10, &r0, &r10, &[]).unwrap();
    verify_consistency(0, 0, &r0, &r0, &[]).unwrap();
    assert!(matches!(
        verify_consistency(0, 10, &r5, &r10, &[]),
        Err(VerifyError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency(0, 10, &r0, &r10, &[r5]),
        Err(VerifyError::ProofLength {
            expected: 0,
            got: 1
        })
    ));
    // Equal sizes: empty proof, equal roots.
    assert_eq!(tree.consistency_proof(5, 5).unwrap(), Vec::<Hash>::new());
    verify_consistency(5, 5, &r5, &r5, &[]).unwrap();
    assert!(verify_consistency(5, 5, &r5, &r10, &[]).is_err());
    assert!(verify_consistency(5, 5, &r5, &r5, &[r5]).is_err());
    // Size 1: the leaf hash is the root and its inclusion proof is empty.
    let leaf0 = tree.leaf(0).unwrap();
    assert_eq!(tree.root_at(1).unwrap(), leaf0);
    assert_eq!(tree.inclusion_proof(0, 1).unwrap(), Vec::<Hash>::new());
    verify_inclusion(&leaf0, 0, 1, &[], &leaf0).unwrap();
    assert!(verify_inclusion(&leaf0, 0, 1, &[leaf0], &leaf0).is_err());
}

// ---------------------------------------------------------------------------------------------
// Errors, not panics.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_requests_are_errors() {
    let tree = numbered_tree(7);
    assert_eq!(
        tree.inclusion_proof(7, 7),
        Err(Error::IndexOutOfRange { index: 7, size: 7 })
    );
    assert_eq!(
        tree.inclusion_proof(3, 3),
        Err(Error::IndexOutOfRange { index: 3, size: 3 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 0),
        Err(Error::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 8),
        Err(Error::SizeOutOfRange { size: 8, len: 7 })
    );
    assert_eq!(
        tree.inclusion_proof(u64::MAX, u64::MAX),
        Err(Error::SizeOutOfRange {
            size: u64::MAX,
            len: 7
        })
    );
    assert_eq!(
        tree.root_at(8),
        Err(Error::SizeOutOfRange { size: 8, len: 7 })
    );
    assert_eq!(
        tree.consistency_proof(5, 3),
        Err(Error::SizeOrder {
            old_size: 5,
            new_size: 3
        })
    );
    assert_eq!(
        tree.consistency_proof(3, 9),
        Err(Error::SizeOutOfRange { size: 9, len: 7 })
    );
    assert_eq!(tree.leaf(u64::MAX), None);

    let empty = Tree::new();
    assert!(empty.is_empty());
    assert_eq!(empty.root(), empty_root());
    assert_eq!(empty.root_at(0), Ok(empty_root()));
    assert_eq!(
        empty.root_at(1),
        Err(Error::SizeOutOfRange { size: 1, len: 0 })
    );
}

#[test]
fn bad_verifications_are_errors() {
    let tree = numbered_tree(7);
    let (leaf, root) = (tree.leaf(2).unwrap(), tree.root());
    let proof = tree.inclusion_proof(2, 7).unwrap();
    assert_eq!(
        verify_inclusion(&leaf, 7, 7, &proof, &root),
        Err(VerifyError::IndexOutOfRange { index: 7, size: 7 })
    );
    assert_eq!(
        verify_inclusion(&leaf, 0, 0, &[], &empty_root()),
        Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_inclusion(&leaf, 2, 7, &proof[..2], &root),
        Err(VerifyError::ProofLength {
            expected: 3,
            got: 2
        })
    );
    let wrong = tree.leaf(3).unwrap();
    let err = verify_inclusion(&wrong, 2, 7, &proof, &root).unwrap_err();
    let VerifyError::RootMismatch { expected, computed } = err else {
        panic!("{err:?}");
    };
    assert_eq!(expected, root);
    assert_ne!(computed, root);
    let message = err.to_string();
    assert!(message.contains(&hex::encode(root)), "{message}");
    assert!(message.contains(&hex::encode(computed)), "{message}");

    let r3 = tree.root_at(3).unwrap();
    let proof = tree.consistency_proof(3, 7).unwrap();
    assert_eq!(
        verify_consistency(7, 3, &root, &r3, &proof),
        Err(VerifyError::SizeOrder {
            old_size: 7,
            new_size: 3
        })
    );
    assert!(matches!(
        verify_consistency(3, 7, &root, &root, &proof),
        Err(VerifyError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency(3, 7, &r3, &r3, &proof),
        Err(VerifyError::RootMismatch { .. })
    ));
    // Huge sizes are just wrong lengths, not overflows.
    assert!(verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &proof, &root).is_err());
    assert!(verify_consistency(u64::MAX - 1, u64::MAX, &r3, &root, &proof).is_err());
}

#[test]
fn rebuilt_tree_equals_grown_tree_and_memory_is_about_two_hashes_a_leaf() {
    let grown = numbered_tree(4_096);
    let rebuilt = Tree::from_leaf_hashes((0..4_096).map(|i| grown.leaf(i).unwrap()));
    assert_eq!(rebuilt, grown);
    assert_eq!(rebuilt.root(), grown.root());
    // from_leaf_hashes sizes each level exactly: 4096 + 2048 + ... + 1 hashes.
    let hashes = 8_191 * size_of::<Hash>();
    assert!(rebuilt.memory_bytes() >= hashes);
    assert!(
        rebuilt.memory_bytes() < hashes + 1_024,
        "{}",
        rebuilt.memory_bytes()
    );
    assert!(grown.memory_bytes() >= hashes);
    assert!(format!("{grown:?}").contains(&hex::encode(grown.root())));
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn past_roots_survive_later_pushes(n in 0u64..500, more in 0u64..500) {
        let mut tree = Tree::new();
        let mut roots = vec![tree.root()];
        for i in 0..n {
            tree.push(&i.to_le_bytes());
            roots.push(tree.root());
        }
        for i in 0..more {
            tree.push_leaf_hash(leaf_hash(&(n + i).to_le_bytes()));
        }
        prop_assert_eq!(tree.len(), n + more);
        for (k, root) in roots.iter().enumerate() {
            prop_assert_eq!(tree.root_at(k as u64).unwrap(), *root);
        }
    }

    #[test]
    fn inclusion_round_trips(n in 1u64..3_000, a in any::<u64>(), b in any::<u64>()) {
        let tree = numbered_tree(n);
        let size = 1 + a % n;
        let index = b % size;
        let proof = tree.inclusion_proof(index, size).unwrap();
        let root = tree.root_at(size).unwrap();
        let leaf = leaf_hash(&index.to_be_bytes());
        prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
        let other = leaf_hash(&(index + 1).to_be_bytes());
        prop_assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
    }

    #[test]
    fn consistency_round_trips(n in 1u64..3_000, a in any::<u64>(), b in any::<u64>()) {
        let tree = numbered_tree(n);
        let new = a % (n + 1);
        let old = b % (new + 1);
        let proof = tree.consistency_proof(old, new).unwrap();
        let (r1, r2) = (tree.root_at(old).unwrap(), tree.root_at(new).unwrap());
        prop_assert_eq!(verify_consistency(old, new, &r1, &r2, &proof), Ok(()));
        if 0 < old && old < new {
            // (From the empty tree nothing constrains the new root.)
            let forged = flip(&r2, 7, 0x04);
            prop_assert!(verify_consistency(old, new, &r1, &forged, &proof).is_err());
        }
    }
}
