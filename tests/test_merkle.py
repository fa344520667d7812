"""ledger.merkle against published RFC 6962 vectors, a naive MTH and tests/log_verifier.py.

The vectors are the eight-leaf tree shared by Certificate Transparency's reference
implementations, copied from transparency-dev/merkle: `testonly/constants.go`
(leaf inputs, every perfect node, the roots of sizes 0 to 8) and
`proof/verify_test.go` (inclusion and consistency proofs; its leaf numbers are
1-based, converted to 0-based indices here).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    subtree_root,
)
from tests import log_verifier

H = bytes.fromhex

LEAF_INPUTS = [
    H(""),
    H("00"),
    H("10"),
    H("2021"),
    H("3031"),
    H("40414243"),
    H("5051525354555657"),
    H("606162636465666768696a6b6c6d6e6f"),
]

# NODE_HASHES[level][index]: every perfect node of the 8-leaf tree.
NODE_HASHES = [
    [
        H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        H("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        H("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        H("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# ROOTS[size] for the first `size` leaves.
ROOTS = [
    H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (leaf index, tree size, audit path)
INCLUSION_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, consistency proof)
CONSISTENCY_PROOFS = [
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")

REFERENCE_LEAVES = [leaf_hash(data) for data in LEAF_INPUTS]
REFERENCE_TREE = MemoryNodes.from_leaves(REFERENCE_LEAVES)


def naive_root(hashes: Sequence[bytes]) -> bytes:
    """MTH straight from RFC 6962 section 2.1, on leaf hashes."""
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(naive_root(hashes[:k]), naive_root(hashes[k:]))


def both_accept_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], tree_root: bytes
) -> tuple[bool, bool]:
    return (
        merkle.verify_inclusion(leaf, index, size, proof, tree_root),
        log_verifier.verify_inclusion(leaf, index, size, proof, tree_root),
    )


def both_accept_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> tuple[bool, bool]:
    return (
        merkle.verify_consistency(old, new, old_root, new_root, proof),
        log_verifier.verify_consistency(old, new, old_root, new_root, proof),
    )


def flip_bit(proof: list[bytes], item: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[item])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:item], bytes(changed), *proof[item + 1 :]]


# --- published vectors ---------------------------------------------------------


def test_hash_functions_match_the_reference_leaves_and_empty_root() -> None:
    assert [leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]
    assert [log_verifier.leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]
    assert node_hash(NODE_HASHES[0][0], NODE_HASHES[0][1]) == NODE_HASHES[1][0]
    assert ROOTS[0] == EMPTY_ROOT
    assert root(0, MemoryNodes()) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


def test_from_leaves_stores_exactly_the_reference_perfect_nodes() -> None:
    expected = [
        (level, index, digest)
        for level, row in enumerate(NODE_HASHES)
        for index, digest in enumerate(row)
    ]
    assert list(REFERENCE_TREE.items()) == expected


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference_for_every_size(size: int) -> None:
    exact = MemoryNodes.from_leaves(REFERENCE_LEAVES[:size])
    assert root(size, REFERENCE_TREE) == ROOTS[size]
    assert root(size, exact) == ROOTS[size]
    assert naive_root(REFERENCE_LEAVES[:size]) == ROOTS[size]
    frontier = Frontier()
    for leaf in REFERENCE_LEAVES[:size]:
        frontier.append(leaf)
    assert frontier.root() == ROOTS[size]


def test_subtree_root_of_unaligned_ranges_follows_the_rfc_split() -> None:
    leaves = REFERENCE_LEAVES
    assert subtree_root(1, 3, REFERENCE_TREE) == node_hash(leaves[1], leaves[2])
    assert subtree_root(2, 7, REFERENCE_TREE) == naive_root(leaves[2:7])
    assert subtree_root(4, 4, REFERENCE_TREE) == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    exact = MemoryNodes.from_leaves(REFERENCE_LEAVES[:size])
    assert inclusion_proof(index, size, REFERENCE_TREE) == proof
    assert inclusion_proof(index, size, exact) == proof
    leaf = REFERENCE_LEAVES[index]
    assert both_accept_inclusion(leaf, index, size, proof, ROOTS[size]) == (True, True)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_reference_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    exact = MemoryNodes.from_leaves(REFERENCE_LEAVES[:new])
    assert consistency_proof(old, new, REFERENCE_TREE) == proof
    assert consistency_proof(old, new, exact) == proof
    assert both_accept_consistency(old, new, ROOTS[old], ROOTS[new], proof) == (True, True)


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS[1:])
def test_reference_inclusion_proofs_refuse_corruption(
    index: int, size: int, proof: list[bytes]
) -> None:
    """The probes of transparency-dev/merkle's corruptInclusionProof."""
    leaf, good_root = REFERENCE_LEAVES[index], ROOTS[size]
    probes = [
        (leaf, index - 1, size, proof, good_root),
        (leaf, index + 1, size, proof, good_root),
        (leaf, index ^ 2, size, proof, good_root),
        (leaf, index, size * 2, proof, good_root),
        (leaf, index, size // 2, proof, good_root),
        (b"WrongLeaf", index, size, proof, good_root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, proof, SOME_HASH),
        (leaf, index, size, [*proof, b""], good_root),
        (leaf, index, size, [*proof, good_root], good_root),
        (leaf, index, size, [b"", *proof], good_root),
        (leaf, index, size, [good_root, *proof], good_root),
        (leaf, index, size, proof[:-1], good_root),
        (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], good_root),
        *[(leaf, index, size, flip_bit(proof, i, 3), good_root) for i in range(len(proof))],
    ]
    for probe in probes:
        assert both_accept_inclusion(*probe) == (False, False), probe


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_reference_consistency_proofs_refuse_corruption(
    old: int, new: int, proof: list[bytes]
) -> None:
    """The probes of transparency-dev/merkle's corruptConsistencyProof."""
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, b"WrongRoot", r2, proof),
        (old, new, r1, b"WrongRoot", proof),
        (old, new, SOME_HASH, r2, proof),
        (old, new, r1, SOME_HASH, proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
        *[(old, new, r1, r2, flip_bit(proof, i, 4)) for i in range(len(proof))],
    ]
    for probe in probes:
        assert merkle.verify_consistency(*probe) is False, probe
        assert log_verifier.verify_consistency(*probe) is False, probe


# --- edges and refusals --------------------------------------------------------


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (-1, 5), (7, 7), (8, 7)])
def test_inclusion_proof_refuses_a_leaf_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_proof(index, size, REFERENCE_TREE)


@pytest.mark.parametrize(("old", "new"), [(5, 4), (-1, 3), (9, 8)])
def test_consistency_proof_refuses_shrinking_or_negative_sizes(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        consistency_proof(old, new, REFERENCE_TREE)


def test_sizes_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError):
        root(-1, REFERENCE_TREE)
    with pytest.raises(ValueError):
        subtree_root(3, 2, REFERENCE_TREE)
    with pytest.raises(KeyError):
        root(9, REFERENCE_TREE)  # leaf 8 was never stored


def test_consistency_from_the_empty_tree_and_between_equal_sizes() -> None:
    assert consistency_proof(0, 5, REFERENCE_TREE) == []
    assert consistency_proof(5, 5, REFERENCE_TREE) == []
    verify = merkle.verify_consistency
    assert verify(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert verify(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify(0, 5, ROOTS[3], ROOTS[5], [])  # a size-0 tree has one root
    assert not verify(0, 5, EMPTY_ROOT, ROOTS[5], [EMPTY_ROOT])
    assert verify(5, 5, ROOTS[5], ROOTS[5], [])
    assert not verify(5, 5, ROOTS[5], ROOTS[4], [])
    assert not verify(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    assert not verify(5, 4, ROOTS[5], ROOTS[4], [])
    assert not verify(3, 5, ROOTS[3], ROOTS[5], [])


def test_verifiers_refuse_hashes_of_the_wrong_length() -> None:
    leaf = REFERENCE_LEAVES[0]
    assert merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    assert not merkle.verify_inclusion(leaf[:31], 0, 1, [], leaf[:31])
    assert not merkle.verify_inclusion(b"", 0, 1, [], b"")
    proof = INCLUSION_PROOFS[1][2]
    assert not merkle.verify_inclusion(leaf, 0, 8, [*proof[:2], proof[2] + b"\x00"], ROOTS[8])


def test_memory_nodes_refuse_missing_and_conflicting_nodes() -> None:
    nodes = MemoryNodes()
    nodes.add(0, 0, NODE_HASHES[0][0])
    nodes.add(0, 0, NODE_HASHES[0][0])  # storing the same node twice is harmless
    with pytest.raises(ValueError):
        nodes.add(0, 0, NODE_HASHES[0][1])
    with pytest.raises(ValueError):
        nodes.add(0, 1, b"short")
    with pytest.raises(KeyError):
        nodes.perfect(0, 1)
    with pytest.raises(KeyError):
        nodes.perfect(1, 0)
    assert list(nodes.items()) == [(0, 0, NODE_HASHES[0][0])]


def test_frontier_refuses_hashes_that_do_not_fit_its_size() -> None:
    with pytest.raises(ValueError):
        Frontier(3, [NODE_HASHES[1][0]])  # size 3 is a 2-subtree and a leaf
    with pytest.raises(ValueError):
        Frontier(1, [b"short"])
    with pytest.raises(ValueError):
        Frontier(-1)
    with pytest.raises(ValueError):
        Frontier().append(b"not a leaf hash")


def test_frontier_from_reference_nodes() -> None:
    frontier = Frontier.from_nodes(7, REFERENCE_TREE)
    assert frontier.hashes == [NODE_HASHES[2][0], NODE_HASHES[1][2], NODE_HASHES[0][6]]
    assert frontier.root() == ROOTS[7]
    assert frontier.append(REFERENCE_LEAVES[7]) == [
        (0, 7, NODE_HASHES[0][7]),
        (1, 3, NODE_HASHES[1][3]),
        (2, 1, NODE_HASHES[2][1]),
        (3, 0, NODE_HASHES[3][0]),
    ]
    assert frontier.hashes == [ROOTS[8]]


def test_parents_hash_a_level_of_the_reference_tree_at_once() -> None:
    assert merkle.parents(NODE_HASHES[0]) == NODE_HASHES[1]
    assert merkle.parents(NODE_HASHES[2]) == NODE_HASHES[3]
    with pytest.raises(ValueError):
        merkle.parents(NODE_HASHES[0][:3])  # an odd run has no parent for its last node


def test_a_perfect_subtree_appended_at_once_gives_what_its_leaves_give() -> None:
    # Leaves 4..5 (a 2-subtree) onto the first four: node (1, 2), then nothing above it.
    frontier = Frontier.from_nodes(4, REFERENCE_TREE)
    assert frontier.append_perfect(1, NODE_HASHES[1][2]) == [(1, 2, NODE_HASHES[1][2])]
    assert (frontier.size, frontier.root()) == (6, ROOTS[6])
    # Leaves 4..7 onto the first four: node (2, 1) completes the root above it.
    frontier = Frontier.from_nodes(4, REFERENCE_TREE)
    assert frontier.append_perfect(2, NODE_HASHES[2][1]) == [
        (2, 1, NODE_HASHES[2][1]),
        (3, 0, NODE_HASHES[3][0]),
    ]
    assert frontier.hashes == [ROOTS[8]]
    with pytest.raises(ValueError):
        Frontier.from_nodes(6, REFERENCE_TREE).append_perfect(2, NODE_HASHES[2][1])  # unaligned
    with pytest.raises(ValueError):
        Frontier().append_perfect(1, b"short")


def test_the_proof_does_not_bind_the_tree_size_alone() -> None:
    """RFC 9162 checks the path's shape, not the size: leaf 0 has the same path
    shape in trees of 5 and 6 leaves.  Callers must take size and root from the
    same verified checkpoint."""
    store = MemoryNodes.from_leaves(REFERENCE_LEAVES[:6])
    proof = inclusion_proof(0, 5, store)
    assert merkle.verify_inclusion(REFERENCE_LEAVES[0], 0, 6, proof, ROOTS[5])
    assert not merkle.verify_inclusion(REFERENCE_LEAVES[0], 0, 6, proof, ROOTS[6])


# --- properties over random trees ----------------------------------------------

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(2 * MAX_SIZE)]
BIG_TREE = MemoryNodes.from_leaves(LEAVES)


@cache
def tree_root(size: int) -> bytes:
    return naive_root(LEAVES[:size])


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def growing_tree(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(2, MAX_SIZE))
    return draw(st.integers(1, new - 1)), new


@settings(max_examples=150, deadline=None)
@given(leaf_in_tree(), st.data())
def test_inclusion_proofs_verify_and_corruptions_are_refused(
    where: tuple[int, int], data: st.DataObject
) -> None:
    index, size = where
    proof = inclusion_proof(index, size, BIG_TREE)
    # A store holding only this size's nodes answers the same: no node beyond is read.
    assert inclusion_proof(index, size, MemoryNodes.from_leaves(LEAVES[:size])) == proof
    leaf, good_root = LEAVES[index], tree_root(size)
    assert both_accept_inclusion(leaf, index, size, proof, good_root) == (True, True)

    refused = [
        (leaf, index, size * 2, proof, good_root),
        (leaf, index, size, [*proof, data.draw(st.binary(min_size=32, max_size=32))], good_root),
        (LEAVES[index + 1], index, size, proof, good_root),
    ]
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
        item = data.draw(st.integers(0, len(proof) - 1))
        refused += [
            (leaf, other, size, proof, good_root),
            (leaf, index, size, proof[:-1], good_root),
            (leaf, index, size, flip_bit(proof, item, data.draw(st.integers(0, 255))), good_root),
        ]
    # Another size is refused whenever its audit path has another length (see
    # test_the_proof_does_not_bind_the_tree_size_alone for why not always).
    wrong_size = data.draw(st.integers(index + 1, 2 * MAX_SIZE).filter(lambda s: s != size))
    if len(inclusion_proof(index, wrong_size, BIG_TREE)) != len(proof):
        refused.append((leaf, index, wrong_size, proof, good_root))
    for probe in refused:
        assert both_accept_inclusion(*probe) == (False, False)


@settings(max_examples=150, deadline=None)
@given(growing_tree(), st.data())
def test_consistency_proofs_verify_and_corruptions_are_refused(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    old, new = sizes
    proof = consistency_proof(old, new, BIG_TREE)
    assert consistency_proof(old, new, MemoryNodes.from_leaves(LEAVES[:new])) == proof
    r1, r2 = tree_root(old), tree_root(new)
    assert both_accept_consistency(old, new, r1, r2, proof) == (True, True)

    item = data.draw(st.integers(0, len(proof) - 1))
    wrong_old = data.draw(st.integers(1, new - 1).filter(lambda s: s != old))
    refused = [
        (old, new, r1, r2, flip_bit(proof, item, data.draw(st.integers(0, 255)))),
        (old, new, r1, r2, proof[:-1]),
        (old, new, r1, r2, [*proof, data.draw(st.binary(min_size=32, max_size=32))]),
        (old, new, r2, r1, proof),
        (old, new, tree_root(old - 1), r2, proof),
        (old, new, r1, tree_root(new + 1), proof),
        (old, new * 2, r1, r2, proof),
        (wrong_old, new, r1, r2, proof),
    ]
    wrong_new = data.draw(st.integers(old + 1, 2 * MAX_SIZE).filter(lambda s: s != new))
    if len(consistency_proof(old, wrong_new, BIG_TREE)) != len(proof):
        refused.append((old, wrong_new, r1, r2, proof))
    for probe in refused:
        assert both_accept_consistency(*probe) == (False, False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=4), max_size=MAX_SIZE), st.data())
def test_frontier_appends_build_the_same_tree_as_from_leaves(
    entries: list[bytes], data: st.DataObject
) -> None:
    leaves = [leaf_hash(entry) for entry in entries]
    store = MemoryNodes.from_leaves(leaves)
    frontier, emitted = Frontier(), []
    for count, leaf in enumerate(leaves, start=1):
        nodes = frontier.append(leaf)
        assert nodes[0] == (0, count - 1, leaf)
        emitted += nodes
        assert frontier.size == count
        assert frontier.root() == root(count, store)
    assert sorted(emitted) == sorted(store.items())  # every node once, none missing
    assert frontier.root() == naive_root(leaves)

    # Rebuilding from stored nodes at any size, then appending the rest, ends the same.
    size = data.draw(st.integers(0, len(leaves)))
    rebuilt = Frontier.from_nodes(size, store)
    assert rebuilt.root() == naive_root(leaves[:size])
    assert Frontier(rebuilt.size, rebuilt.hashes).hashes == rebuilt.hashes
    for leaf in leaves[size:]:
        rebuilt.append(leaf)
    assert rebuilt.hashes == frontier.hashes
    assert rebuilt.root() == frontier.root()
