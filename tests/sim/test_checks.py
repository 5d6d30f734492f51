"""The checker itself: each property it guards, and that it stays quiet when kept."""

from __future__ import annotations

from dataclasses import replace

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate
from mura.chain.pending import asset_state_key, balance_key
from mura.chain.state import MemoryState
from mura.chain.state_root import update_lattice
from mura.consensus.messages import Commit, Prepare
from mura.sim.checks import Checker, ledger_problems
from mura.sim.ledger import checked
from mura.sim.workload import NAC, VOUCHER
from mura.tests.consensus.replica_cluster import Cluster, commit_from, proposal_for


def certified(cluster: Cluster, timestamp_ms: int) -> tuple[Block, CommitCertificate]:
    proposal = proposal_for(cluster, timestamp_ms=timestamp_ms)
    signatures = tuple((index, commit_from(cluster, index, proposal).signature) for index in (0, 1, 2))
    return checked(proposal.block), CommitCertificate(1, 0, proposal.block_hash, signatures)


def make_checker(cluster: Cluster) -> Checker:
    return Checker(cluster.genesis, frozenset({0, 1, 2}))


def test_agreement_kept() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    block, certificate = certified(cluster, 100)
    checker.on_commit(0, True, block, certificate, 5)
    checker.on_commit(1, True, block, certificate, 6)
    checker.check_validity(7)
    assert checker.violations == []


def test_invalid_agreement_two_blocks_at_one_height() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    first, first_certificate = certified(cluster, 100)
    second, second_certificate = certified(cluster, 200)
    checker.on_commit(0, True, first, first_certificate, 5)
    checker.on_commit(1, True, second, second_certificate, 6)
    assert [violation.kind for violation in checker.violations] == ["conflicting_certificates", "agreement"]


def test_invalid_certificate_on_an_honest_commit() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    block, certificate = certified(cluster, 100)
    checker.on_commit(0, True, block, replace(certificate, signatures=certificate.signatures[:2]), 5)
    assert [violation.kind for violation in checker.violations] == ["invalid_certificate"]


def test_byzantine_commits_do_not_count_for_agreement() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    first, first_certificate = certified(cluster, 100)
    checker.on_commit(0, True, first, first_certificate, 5)
    checker.on_commit(3, False, first, replace(first_certificate, signatures=()), 6)
    assert checker.violations == []


def test_invalid_honest_double_signature() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    checker.on_signed(Prepare.sign(cluster.keys[1], 1, "mura-sim", 0, 1, b"a" * 32), 5)
    checker.on_signed(Prepare.sign(cluster.keys[1], 1, "mura-sim", 0, 1, b"a" * 32), 6)
    checker.on_signed(Commit.sign(cluster.keys[1], 1, "mura-sim", 0, 1, b"b" * 32), 7)
    assert checker.violations == []
    checker.on_signed(Prepare.sign(cluster.keys[1], 1, "mura-sim", 0, 1, b"b" * 32), 8)
    assert [violation.kind for violation in checker.violations] == ["honest_equivocation"]
    checker.on_signed(Prepare.sign(cluster.keys[3], 3, "mura-sim", 0, 1, b"c" * 32), 9)
    checker.on_signed(Prepare.sign(cluster.keys[3], 3, "mura-sim", 0, 1, b"d" * 32), 9)
    assert len(checker.violations) == 1


def test_invalid_chain_fails_validity() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    block, _ = certified(cluster, 100)
    checker.blocks[1] = block
    checker.blocks[2] = block
    checker.check_validity(9)
    assert [violation.kind for violation in checker.violations] == ["validity"]


def test_books_that_do_not_balance_fail_the_ledger_check() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    block, _ = certified(cluster, 100)
    checker.blocks[1] = block
    checker.check_validity(9)
    assert checker.violations == [] and checker.final_state is not None
    state = checker.final_state
    assert ledger_problems(state) == []
    # A balance that appears from nowhere: the supply, the holder count and the root all disagree.
    state.entries[balance_key(NAC, bytes(32))] = codec.encode(5)
    problems = ledger_problems(state)
    assert len(problems) == 3
    assert problems[0].startswith("the balances of NAC sum to") and "holders" in problems[1]
    assert "state root" in problems[2]


def test_a_lapsed_asset_held_by_anyone_but_its_issuer_fails_the_ledger_check() -> None:
    state = MemoryState()
    state.commit(Cluster().genesis.changes)
    lapsed = replace(state.load_asset_state(VOUCHER), expired=True, lapse_complete=True)
    key, value = asset_state_key(VOUCHER), lapsed.encode()
    # Written with its root updated, so only the rule about lapses is broken.
    state.lattice = update_lattice(state.lattice, [(key, state.entries.get(key), value)])
    state.entries[key] = value
    assert ledger_problems(state) == [f"{VOUCHER} lapsed, yet 3 accounts besides its issuer hold it"]


def test_a_node_whose_state_is_not_the_chains_fails_the_state_check() -> None:
    cluster = Cluster()
    checker = make_checker(cluster)
    block, _ = certified(cluster, 100)
    checker.blocks[1] = block
    root = block.header.state_root
    checker.check_node_states([(0, block.header, root), (1, cluster.genesis.block.header, b"")], 9)
    assert checker.violations == []
    checker.check_node_states([(2, block.header, bytes(32))], 9)
    assert [violation.kind for violation in checker.violations] == ["state"]
