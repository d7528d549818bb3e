//! The Merkle tree of the ledger's append-only event log, in the shape of RFC 6962
//! (Certificate Transparency) §2.1, so that anyone holding a signed root can check, without
//! trusting the ledger, that an event is in the log (inclusion) and that a later log extends
//! an earlier one without rewriting it (consistency).
//!
//! # Shape, and why
//!
//! - **RFC 6962 hashing**: `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖ right)`,
//!   the root of `n > 1` leaves splits at `k`, the largest power of two below `n`, and the root of
//!   the empty tree is `SHA-256("")`. The distinct prefixes keep a leaf from passing for a node.
//!   Following the RFC exactly means the Certificate Transparency test vectors and any RFC 6962 /
//!   RFC 9162 verifier (in any language) work against our roots and proofs. The ledger's leaf data
//!   is an event's 32-byte chain hash, but [`Tree::push`] takes any bytes; [`Tree::push_leaf_hash`]
//!   takes an already computed leaf hash.
//! - **Every complete subtree is kept** ([`Tree`]): level `k`, entry `i` holds the hash of leaves
//!   `[i·2^k, (i+1)·2^k)`. A push appends one leaf hash and completes the parents it closes
//!   (amortised one node hash per push; nothing is ever recomputed). Every range that the RFC
//!   recursion visits starts on a boundary of its own size rounded up to a power of two, so it is
//!   the concatenation of at most 64 stored perfect subtrees and its hash costs `O(log n)`. Hence
//!   [`Tree::root_at`] any past size is `O(log n)` and proofs are `O(log² n)` hashes at worst.
//!   The price is about two hashes (64 bytes) of memory per leaf.
//! - **Verification needs no tree** ([`verify_inclusion`], [`verify_consistency`]): an auditor
//!   holds only sizes, roots and proofs. Both use the bit-walking algorithms of RFC 9162
//!   §2.1.3.2 and §2.1.4.2, never a rebuilt tree, and check the proof length before hashing.
//! - **Pure**: no I/O, no clock, no randomness, no panics; bad arguments are [`Error`]s and
//!   failed checks are [`VerifyError`]s.
//!
//! # Edge cases (RFC 6962 defines proofs only for `0 < m < n`)
//!
//! - Inclusion in a tree of size 1 is the empty proof (the leaf hash is the root).
//! - Consistency from `m` to `m` is the empty proof; it verifies iff the proof is empty and the
//!   two roots are equal (as in the Go CT verifier, transparency-dev/merkle).
//! - Consistency from the empty tree to any size is the empty proof: the empty tree is a prefix
//!   of every tree, so there is nothing to prove about the new root. It verifies iff the proof
//!   is empty and the old root is [`empty_root`]. (Implementations differ here: some reject
//!   size 0 outright, some accept any old root; checking the one root the RFC defines for the
//!   empty tree costs nothing and catches a caller passing the wrong value.)

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The RFC 6962 leaf hash: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")` (RFC 6962 §2.1, `MTH({})`).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A request the tree cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The leaf index is not below the tree size it was asked about.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The tree size asked about is larger than the tree.
    #[error("tree size {size} is beyond the {len} leaves in the tree")]
    SizeOutOfRange { size: u64, len: u64 },
    /// A consistency proof was asked from a larger to a smaller tree.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOrder { old_size: u64, new_size: u64 },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size (every index is, for size 0).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The old tree size is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOrder { old_size: u64, new_size: u64 },
    /// The proof does not have the number of hashes these sizes call for.
    #[error("proof has {got} hashes, these tree sizes call for {expected}")]
    ProofLength { expected: usize, got: usize },
    /// The root the proof leads to is not the root given (inclusion), or the new root
    /// (consistency).
    #[error("root mismatch: expected {}, computed {}", hex::encode(.expected), hex::encode(.computed))]
    RootMismatch { expected: Hash, computed: Hash },
    /// The consistency proof does not lead back to the old root.
    #[error("old root mismatch: expected {}, computed {}", hex::encode(.expected), hex::encode(.computed))]
    OldRootMismatch { expected: Hash, computed: Hash },
}

/// An in-memory, append-only RFC 6962 Merkle tree that keeps every complete subtree hash.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// `levels[k][i]` is the hash of leaves `[i·2^k, (i+1)·2^k)`; `levels[0]` are the leaf
    /// hashes. `levels[k].len() == len >> k`, and there is no empty level at the top.
    levels: Vec<Vec<Hash>>,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("len", &self.len())
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a tree from its leaf hashes in log order (e.g. at startup).
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(leaf_hashes: I) -> Self {
        let leaf_hashes = leaf_hashes.into_iter();
        let mut tree = Self::new();
        let mut expected = leaf_hashes.size_hint().0;
        while expected > 0 {
            tree.levels.push(Vec::with_capacity(expected));
            expected >>= 1;
        }
        for hash in leaf_hashes {
            tree.push_leaf_hash(hash);
        }
        tree
    }

    /// Appends a leaf with the given data; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf whose [`leaf_hash`] is already known; returns its index.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.len();
        let mut carry = hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(carry);
            // An even row just completed a pair: its parent is now a complete subtree.
            carry = match row.as_slice() {
                [.., left, right] if row.len() % 2 == 0 => node_hash(left, right),
                _ => break,
            };
            level += 1;
        }
        index
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if there is one.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.node(0, index)
    }

    /// The root of the whole tree (`MTH(D[len])`).
    pub fn root(&self) -> Hash {
        // Bit k of len is set iff level k has an odd length, whose last entry is then the
        // perfect subtree of that size at the right edge; fold them from the right.
        let mut root: Option<Hash> = None;
        for row in &self.levels {
            if row.len() % 2 == 1
                && let Some(peak) = row.last()
            {
                root = Some(match root {
                    None => *peak,
                    Some(right) => node_hash(peak, &right),
                });
            }
        }
        root.unwrap_or_else(empty_root)
    }

    /// The root the tree had when it held `size` leaves (`MTH(D[size])`), `size <= len`.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        self.range_hash(0, size)
    }

    /// The audit path of leaf `index` in the tree of `size` leaves: RFC 6962 §2.1.1
    /// `PATH(index, D[size])`, ordered from the leaf's sibling up to the root's child.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::IndexOutOfRange { index, size });
        }
        // Walk down from the root, noting the sibling of every subtree that holds the leaf.
        let mut proof = Vec::new();
        let (mut start, mut end) = (0, size);
        while end - start > 1 {
            let mid = start + split(end - start);
            if index < mid {
                proof.push(self.range_hash(mid, end)?);
                end = mid;
            } else {
                proof.push(self.range_hash(start, mid)?);
                start = mid;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// The consistency proof from the tree of `old_size` leaves to the tree of `new_size`:
    /// RFC 6962 §2.1.2 `PROOF(old_size, D[new_size])`, ordered bottom-up. Empty when
    /// `old_size` is 0 or equals `new_size` (see the crate documentation).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, Error> {
        if old_size > new_size {
            return Err(Error::SizeOrder { old_size, new_size });
        }
        self.check_size(new_size)?;
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        // SUBPROOF(m, D[start:end], complete), unrolled: `complete` is the RFC's `b`, true while
        // the old tree's root is a node of the new tree we are still inside.
        let mut proof = Vec::new();
        let (mut start, mut end, mut complete) = (0, new_size, true);
        while old_size < end {
            let mid = start + split(end - start);
            if old_size <= mid {
                proof.push(self.range_hash(mid, end)?);
                end = mid;
            } else {
                proof.push(self.range_hash(start, mid)?);
                start = mid;
                complete = false;
            }
        }
        if !complete {
            proof.push(self.range_hash(start, end)?);
        }
        proof.reverse();
        Ok(proof)
    }

    /// Roughly the heap and inline bytes the tree holds (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        let rows: usize = self
            .levels
            .iter()
            .map(|row| row.capacity() * size_of::<Hash>())
            .sum();
        size_of::<Self>() + self.levels.capacity() * size_of::<Vec<Hash>>() + rows
    }

    fn check_size(&self, size: u64) -> Result<(), Error> {
        let len = self.len();
        if size > len {
            return Err(Error::SizeOutOfRange { size, len });
        }
        Ok(())
    }

    /// The stored hash of the perfect subtree at `level`, `index`, if complete.
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// `MTH(D[start:end])` for a non-empty range whose `start` is a multiple of `end - start`
    /// rounded up to a power of two, as every range of the RFC recursion is. Such a range is its
    /// perfect subtrees by the binary digits of its length, largest first; the RFC's split
    /// peels them off from the left, so the hash folds them from the right.
    fn range_hash(&self, start: u64, end: u64) -> Result<Hash, Error> {
        let missing = Error::SizeOutOfRange {
            size: end,
            len: self.len(),
        };
        let n = end.checked_sub(start).ok_or(missing.clone())?;
        let mut acc: Option<Hash> = None;
        for level in 0..u64::BITS {
            if n >> level == 0 {
                break;
            }
            if (n >> level) & 1 == 0 {
                continue;
            }
            // The subtrees at this level and below cover the last `n mod 2^(level+1)` leaves.
            let offset = start + (n & !(u64::MAX >> (63 - level)));
            let node = self.node(level, offset >> level).ok_or(missing.clone())?;
            acc = Some(match acc {
                None => node,
                Some(right) => node_hash(&node, &right),
            });
        }
        acc.ok_or(missing)
    }
}

/// The RFC's `k` for `n >= 2` leaves: the largest power of two strictly below `n`.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// How many proof hashes the RFC 9162 walk consumes from `(fn, sn)` until `sn` reaches 0. Both
/// verification algorithms move `fn` and `sn` identically whatever the hashes are, so this is
/// the exact proof length they accept.
fn walk_len(mut fnode: u64, mut snode: u64) -> usize {
    let mut steps = 0;
    while snode != 0 {
        if fnode & 1 == 0 && fnode == snode {
            while fnode != 0 && fnode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
        steps += 1;
    }
    steps
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`, by the
/// RFC 9162 §2.1.3.2 algorithm.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let expected = walk_len(fnode, snode);
    let wrong_length = VerifyError::ProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode != 0 && fnode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch {
            expected: *root,
            computed: r,
        });
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root`, by the RFC 9162 §2.1.4.2 algorithm (and the
/// conventions for `old_size` 0 and equal sizes in the crate documentation).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::SizeOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::ProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        let old_expected = if old_size == 0 {
            empty_root()
        } else {
            *new_root
        };
        if *old_root != old_expected {
            return Err(VerifyError::OldRootMismatch {
                expected: *old_root,
                computed: old_expected,
            });
        }
        return Ok(());
    }

    // 0 < old_size < new_size. Skip the levels where the old tree's last leaf is a right child:
    // the walk starts at the largest perfect subtree ending at old_size.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // When old_size is a power of two that subtree is the old tree itself, and the proof omits
    // its hash (the verifier has it: old_root). Otherwise the proof starts with it.
    let seed_in_proof = !old_size.is_power_of_two();
    let expected = walk_len(fnode, snode) + usize::from(seed_in_proof);
    let wrong_length = VerifyError::ProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let (seed, path) = if seed_in_proof {
        match proof.split_first() {
            Some((seed, path)) => (*seed, path),
            None => return Err(wrong_length),
        }
    } else {
        (*old_root, proof)
    };

    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode != 0 && fnode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch {
            expected: *old_root,
            computed: fr,
        });
    }
    if sr != *new_root {
        return Err(VerifyError::RootMismatch {
            expected: *new_root,
            computed: sr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
