"""RFC 6962 / RFC 9162 Merkle tree hashing for Sou's append-only log.

The tree is stored as its *perfect* nodes only: node (level, index) is the hash of
the perfect subtree covering leaves [index * 2**level, (index + 1) * 2**level).
Level 0 holds the leaf hashes.  Every root, inclusion proof and consistency proof
of a tree of any size can be computed from those aligned nodes, so a database
needs about two rows per leaf and never rewrites a row.

Leaves are always given as LEAF HASHES (see `leaf_hash`), never raw entries.
The verifiers return False on any bad input; the provers raise ValueError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# RFC 6962 section 2.1 domain separation: a leaf can never be mistaken for a node.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one log entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an inner node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def parents(nodes: Sequence[bytes]) -> list[bytes]:
    """The nodes one level up from an even run of aligned nodes: hashing a level at a time
    costs far less than appending leaf by leaf."""
    sha256, prefix = hashlib.sha256, _NODE_PREFIX
    return [sha256(prefix + a + b).digest() for a, b in zip(nodes[::2], nodes[1::2], strict=True)]


class NodeReader(Protocol):
    """Read access to the stored perfect nodes of a tree."""

    def perfect(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree of height `level` covering leaves
        [index*2**level, (index+1)*2**level).  Level 0 = leaf hashes."""
        ...


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): the RFC's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_perfect(start: int, end: int) -> bool:
    """True when [start, end) is a power-of-two range aligned on its own size."""
    n = end - start
    return n & (n - 1) == 0 and start % n == 0


def subtree_root(start: int, end: int, nodes: NodeReader) -> bytes:
    """MTH(D[start:end]) by the RFC 6962 recursion.

    Aligned power-of-two ranges are read with `nodes.perfect`; other ranges split
    at the largest power of two below their length, as in the RFC.  An empty
    range is EMPTY_ROOT, the RFC's MTH({}).
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad leaf range [{start}, {end})")
    if start == end:
        return EMPTY_ROOT
    if _is_perfect(start, end):
        level = (end - start).bit_length() - 1
        return nodes.perfect(level, start >> level)
    k = _split(end - start)
    return node_hash(subtree_root(start, start + k, nodes), subtree_root(start + k, end, nodes))


def root(size: int, nodes: NodeReader) -> bytes:
    """MTH of the first `size` leaves; EMPTY_ROOT for an empty tree."""
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    return subtree_root(0, size, nodes)


def inclusion_proof(index: int, size: int, nodes: NodeReader) -> list[bytes]:
    """RFC 6962 PATH(index, D[size]): the audit path of one leaf, leaf end first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    # Walk down from the root; each step keeps the half holding the leaf and
    # records the other half.  Siblings are collected top-down, returned bottom-up.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_root(start + k, end, nodes))
            end = start + k
        else:
            proof.append(subtree_root(start, start + k, nodes))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, nodes: NodeReader) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[new_size]).

    Returns [] when old_size == new_size (the roots must simply be equal) and
    when old_size == 0: every tree extends the empty tree, so there is nothing
    to prove and the RFC defines no proof for it.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, whole = 0, new_size, True
    # SUBPROOF(m, D[start:end], whole), unrolled; m is relative to `start`.
    m = old_size
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(subtree_root(start + k, end, nodes))
            end = start + k
        else:
            proof.append(subtree_root(start, start + k, nodes))
            start, m, whole = start + k, m - k, False
    if not whole:
        # The old tree's last subtree is not a prefix of the new tree: send it too.
        proof.append(subtree_root(start, end, nodes))
    proof.reverse()
    return proof


def _valid_hashes(*hashes: bytes) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True if `proof` shows the LEAF HASH `leaf` at `index` in the tree of `size`
    leaves with root `root` (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size or not _valid_hashes(leaf, root, *proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False  # proof longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no right sibling in the tree.
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if `proof` shows the tree (new_size, new_root) extends (old_size,
    old_root) (RFC 9162 section 2.1.4.2).

    Equal sizes need an empty proof and equal roots.  From size 0 the proof is
    empty and old_root must be EMPTY_ROOT; any new tree extends the empty one.
    """
    if not 0 <= old_size <= new_size or not _valid_hashes(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    return _verify_consistency_path(old_size, new_size, old_root, new_root, list(proof))


def _verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 steps 1 to 7, for 0 < old_size < new_size."""
    if not path:
        return False
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one; the proof omits it.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False  # proof longer than the path
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


def _perfect_ranges(size: int) -> Iterator[tuple[int, int]]:
    """(level, index) of the perfect subtrees making up `size` leaves, largest first."""
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            yield level, offset >> level
            offset += 1 << level


class Frontier:
    """The right edge of a growing tree: the roots of the perfect subtrees that
    make up the first `size` leaves (at most log2(size)+1 of them).  Appending
    leaves yields the new perfect-subtree nodes to persist."""

    size: int

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """`hashes` are the perfect roots left to right (largest first), as given
        by `Frontier.from_nodes` or `.hashes`; one per set bit of `size`."""
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} frontier hashes")
        if not _valid_hashes(*hashes):
            raise ValueError(f"frontier hashes must be {HASH_SIZE} bytes")
        self.size = size
        self._hashes = list(hashes)

    @classmethod
    def from_nodes(cls, size: int, nodes: NodeReader) -> Frontier:
        """Rebuild the frontier of a tree of `size` leaves from its stored nodes."""
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        return cls(size, [nodes.perfect(level, i) for level, i in _perfect_ranges(size)])

    @property
    def hashes(self) -> list[bytes]:
        """The perfect subtree roots, left to right (a copy)."""
        return list(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one LEAF HASH; return every perfect node it completes as
        (level, index, hash), starting with (0, leaf_index, leaf)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        index, carry, level = self.size, leaf, 0
        completed = [(0, index, leaf)]
        # Like binary addition: each trailing 1 bit of the size is a perfect
        # subtree of the same height as the carry, so the two merge.
        while index >> level & 1:
            carry = node_hash(self._hashes.pop(), carry)
            level += 1
            completed.append((level, index >> level, carry))
        self._hashes.append(carry)
        self.size += 1
        return completed

    def append_perfect(self, level: int, root: bytes) -> list[tuple[int, int, bytes]]:
        """Add the ROOT of a perfect subtree of 2**level leaves at once (the size must be a
        multiple of that); return the nodes it completes, as `append` does, starting with
        (level, its index, root)."""
        if level < 0 or self.size & ((1 << level) - 1):
            raise ValueError(f"a subtree of level {level} cannot start at leaf {self.size}")
        if len(root) != HASH_SIZE:
            raise ValueError(f"a node hash is {HASH_SIZE} bytes, got {len(root)}")
        index, carry, height = self.size, root, level
        completed = [(level, index >> level, root)]
        while index >> height & 1:
            carry = node_hash(self._hashes.pop(), carry)
            height += 1
            completed.append((height, index >> height, carry))
        self._hashes.append(carry)
        self.size += 1 << level
        return completed

    def root(self) -> bytes:
        """MTH of the current tree, from the frontier alone."""
        if not self._hashes:
            return EMPTY_ROOT
        # The RFC splits off the largest perfect subtree first, so fold from the right.
        result = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            result = node_hash(h, result)
        return result


class MemoryNodes:
    """A NodeReader over a dict, used by the audit and the tests."""

    def __init__(self) -> None:
        self._levels: dict[int, dict[int, bytes]] = {}

    def add(self, level: int, index: int, digest: bytes) -> None:
        """Store one perfect node; storing a different hash at the same place is refused."""
        if level < 0 or index < 0 or len(digest) != HASH_SIZE:
            raise ValueError(f"bad node ({level}, {index}) of {len(digest)} bytes")
        row = self._levels.setdefault(level, {})
        if row.setdefault(index, digest) != digest:
            raise ValueError(f"node ({level}, {index}) is already stored with another hash")

    def perfect(self, level: int, index: int) -> bytes:
        """The stored node; KeyError if it is missing."""
        return self._levels[level][index]

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> MemoryNodes:
        """Every perfect node over these LEAF HASHES, built level by level."""
        if not _valid_hashes(*leaves):
            raise ValueError(f"leaf hashes must be {HASH_SIZE} bytes")
        store = cls()
        row, level, sha256 = list(leaves), 0, hashlib.sha256
        while row:
            store._levels[level] = dict(enumerate(row))
            # A trailing odd node has no sibling yet: it is not a perfect node above.
            pairs = zip(row[::2], row[1::2], strict=False)
            row = [sha256(_NODE_PREFIX + a + b).digest() for a, b in pairs]
            level += 1
        return store

    def items(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored node as (level, index, hash), by level then index."""
        for level in sorted(self._levels):
            for index, digest in sorted(self._levels[level].items()):
                yield level, index, digest
