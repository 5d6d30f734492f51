"""Tests for chain/state.py: what an asset's registrar does, approvals of the holders of
a restricted asset and freezes of accounts, and the rules they set.

As in ``test_state``, each rule has ``test_<rule>`` (a valid case is accepted with
the expected effect) and ``test_invalid_<rule>`` (the typed exception is raised,
with its details, and nothing changes).

The chain here holds ``NAC`` (open) and ``BOND`` (restricted), both issued at
genesis by the issuer, with carol their registrar. ``BOND``'s genesis holders
(the issuer and alice) are approved; bob is not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mura.chain.assets import TransferPolicy
from mura.chain.errors import AccountFrozen, HolderNotApproved, NotRegistrar
from mura.chain.keys import SigningKey
from mura.chain.pending import approval_key, frozen_key
from mura.chain.state import GenesisAsset
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    Burn,
    Freeze,
    Mint,
    RevokeHolder,
    Transaction,
    Transfer,
    Unfreeze,
)
from mura.tests.chain.factories import ASSET, Chain, asset_terms, key_named
from mura.tests.chain.transition import MakeBlock, Sign, accept, refuse_transaction

BOND = "BOND"
CAROL = key_named("carol")


@pytest.fixture
def chain(make_chain: Callable[..., Chain], keys: Callable[[str], SigningKey]) -> Chain:
    issuer, alice = keys("issuer").public_key, keys("alice").public_key
    bond = GenesisAsset(
        asset_terms(BOND, issuer, registrar=CAROL.public_key, policy=TransferPolicy.RESTRICTED),
        ((issuer, 10_000), (alice, 500)),
    )
    return make_chain(terms={"registrar": CAROL.public_key}, assets=[bond])


class Nonces:
    """Signs each key's transactions with its next nonce, over as many blocks as a test builds."""

    def __init__(self, chain: Chain, sign: Sign) -> None:
        self.chain = chain
        self._sign = sign
        self._next: dict[bytes, int] = {}

    def __call__(self, key: SigningKey, body: Body) -> Transaction:
        nonce = self._next.get(key.public_key, self.chain.nonce(key))
        self._next[key.public_key] = nonce + 1
        transaction: Transaction = self._sign(key, body, nonce=nonce)
        return transaction


def _commit(chain: Chain, make_block: MakeBlock, *transactions: Transaction) -> None:
    built = make_block(chain, list(transactions))
    assert built.refused == [], [(error.rule, error.message) for _, error in built.refused]
    accept(chain, built)


def _approved(chain: Chain, asset: str, key: SigningKey) -> bool:
    return chain.state.load_entry(approval_key(asset, key.public_key)) is not None


def _frozen(chain: Chain, asset: str, key: SigningKey) -> bool:
    return chain.state.load_entry(frozen_key(asset, key.public_key)) is not None


# --- not_registrar ---------------------------------------------------------------------------


def test_registrar(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """The registrar approves, revokes, freezes and unfreezes; each is an entry of the state."""
    by = Nonces(chain, sign)
    bob = chain.bob.public_key
    _commit(chain, make_block, by(CAROL, ApproveHolder(BOND, bob)), by(CAROL, Freeze(ASSET, bob)))
    assert _approved(chain, BOND, chain.bob) and _frozen(chain, ASSET, chain.bob)
    assert not _frozen(chain, BOND, chain.bob) and not _approved(chain, ASSET, chain.bob)
    _commit(chain, make_block, by(CAROL, RevokeHolder(BOND, bob)), by(CAROL, Unfreeze(ASSET, bob)))
    assert not _approved(chain, BOND, chain.bob) and not _frozen(chain, ASSET, chain.bob)
    assert chain.nonce(CAROL) == 4


def test_registrar_actions_repeat_harmlessly(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """Approving an approved holder, or unfreezing an account that is not frozen, changes nothing but the nonce."""
    by = Nonces(chain, sign)
    root = chain.state.lattice.root()
    again = [by(CAROL, ApproveHolder(BOND, chain.alice.public_key)), by(CAROL, Unfreeze(BOND, chain.bob.public_key))]
    built = make_block(chain, again)
    accept(chain, built)
    assert set(built.changes.entries) == {b"a" + CAROL.public_key}
    assert chain.state.lattice.root() != root and _approved(chain, BOND, chain.alice)


@pytest.mark.parametrize("kind", [ApproveHolder, RevokeHolder, Freeze, Unfreeze])
@pytest.mark.parametrize("who", ["issuer", "alice", "bob"])
def test_invalid_not_registrar(chain: Chain, sign: Sign, make_block: MakeBlock, kind: type, who: str) -> None:
    """Not the issuer either, when another is the registrar."""
    sender = getattr(chain, who)
    for asset in (ASSET, BOND):
        cause = refuse_transaction(chain, make_block, sign(sender, kind(asset, chain.bob.public_key)), NotRegistrar)
        assert cause.details == {"asset": asset}
    assert not _approved(chain, BOND, chain.bob) and not _frozen(chain, ASSET, chain.bob)


def test_issuer_is_the_registrar_when_none_is_named(
    make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock
) -> None:
    chain = make_chain()
    _commit(chain, make_block, sign(chain.issuer, Freeze(ASSET, chain.alice.public_key)))
    assert _frozen(chain, ASSET, chain.alice)


# --- holder_not_approved ------------------------------------------------------------------------


def test_approved_holder(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """Approve, then the restricted asset moves to and from the holder; the issuer always may."""
    by = Nonces(chain, sign)
    bob = chain.bob.public_key
    _commit(chain, make_block, by(CAROL, ApproveHolder(BOND, bob)))
    _commit(
        chain,
        make_block,
        by(chain.alice, Transfer(BOND, bob, 100)),
        by(chain.bob, Transfer(BOND, chain.alice.public_key, 30)),
        by(chain.issuer, Transfer(BOND, bob, 5)),
        by(chain.issuer, Mint(BOND, bob, 7)),
        by(chain.bob, Transfer(BOND, chain.issuer.public_key, 2)),
    )
    assert chain.balance(chain.bob, BOND) == 100 - 30 + 5 + 7 - 2
    assert chain.balance(chain.alice, BOND) == 500 - 100 + 30
    assert chain.asset_state(BOND).holders == 3 and chain.supply(BOND) == 10_507


def test_open_asset_needs_no_approval(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _commit(chain, make_block, sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 100)))
    assert chain.balance(chain.bob) == 100


def test_invalid_holder_not_approved_recipient(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    bob = chain.bob.public_key
    expected = {"asset": BOND, "account": bob.hex(), "party": "recipient"}
    attempts: list[tuple[SigningKey, Body]] = [
        (chain.alice, Transfer(BOND, bob, 1)),
        (chain.issuer, Transfer(BOND, bob, 1)),
        (chain.issuer, Mint(BOND, bob, 1)),
    ]
    for sender, body in attempts:
        cause = refuse_transaction(chain, make_block, sign(sender, body), HolderNotApproved)
        assert cause.details == expected


def test_invalid_holder_not_approved_sender(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """A revoked holder keeps its balance but moves it no more, not even to the issuer."""
    by = Nonces(chain, sign)
    _commit(chain, make_block, by(CAROL, RevokeHolder(BOND, chain.alice.public_key)))
    assert chain.balance(chain.alice, BOND) == 500
    expected = {"asset": BOND, "account": chain.alice.public_key.hex(), "party": "sender"}
    for recipient in (chain.issuer, chain.alice):
        tx = sign(chain.alice, Transfer(BOND, recipient.public_key, 1))
        cause = refuse_transaction(chain, make_block, tx, HolderNotApproved)
        assert cause.details == expected
    # Nor may the issuer send it to the revoked holder.
    to_alice = sign(chain.issuer, Transfer(BOND, chain.alice.public_key, 1))
    cause = refuse_transaction(chain, make_block, to_alice, HolderNotApproved)
    assert cause.details == {**expected, "party": "recipient"}


def test_revoke_stops_an_approved_holder(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    by = Nonces(chain, sign)
    bob = chain.bob.public_key
    _commit(chain, make_block, by(CAROL, ApproveHolder(BOND, bob)), by(chain.alice, Transfer(BOND, bob, 50)))
    assert chain.balance(chain.bob, BOND) == 50
    # Revoked in the same block as a transfer to it: refused from that transaction on.
    revoke = by(CAROL, RevokeHolder(BOND, bob))
    to_bob = by(chain.alice, Transfer(BOND, bob, 1))
    cause = refuse_transaction(chain, make_block, to_bob, HolderNotApproved, before=[revoke])
    assert cause.details["party"] == "recipient"
    # The revoked holder's other assets move as before.
    _commit(chain, make_block, revoke, sign(chain.alice, Transfer(ASSET, bob, 9), nonce=chain.nonce(chain.alice)))
    assert chain.balance(chain.bob) == 9 and chain.balance(chain.bob, BOND) == 50


# --- account_frozen --------------------------------------------------------------------------


def _freeze(chain: Chain, sign: Sign, make_block: MakeBlock, asset: str, key: SigningKey) -> None:
    _commit(chain, make_block, sign(CAROL, Freeze(asset, key.public_key), nonce=chain.nonce(CAROL)))


def test_frozen_in_one_asset_only(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """A freeze holds in its asset alone: the account's other assets move as before."""
    _freeze(chain, sign, make_block, ASSET, chain.alice)
    by = Nonces(chain, sign)
    _commit(chain, make_block, by(chain.alice, Transfer(BOND, chain.issuer.public_key, 100)))
    assert chain.balance(chain.alice, BOND) == 400 and chain.balance(chain.alice) == 1_000


def test_unfreeze_restores(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _freeze(chain, sign, make_block, ASSET, chain.alice)
    by = Nonces(chain, sign)
    unfreeze = by(CAROL, Unfreeze(ASSET, chain.alice.public_key))
    _commit(
        chain,
        make_block,
        unfreeze,
        by(chain.alice, Transfer(ASSET, chain.bob.public_key, 10)),
        by(chain.bob, Transfer(ASSET, chain.alice.public_key, 4)),
    )
    assert chain.balance(chain.alice) == 994 and chain.balance(chain.bob) == 6


@pytest.mark.parametrize("party", ["sender", "recipient"])
def test_invalid_account_frozen_transfer(chain: Chain, sign: Sign, make_block: MakeBlock, party: str) -> None:
    """A frozen account neither sends nor receives: not even from or to the issuer."""
    _freeze(chain, sign, make_block, ASSET, chain.alice)
    alice = chain.alice.public_key
    expected = {"asset": ASSET, "account": alice.hex(), "party": party}
    if party == "sender":
        attempts = [sign(chain.alice, Transfer(ASSET, other.public_key, 1)) for other in (chain.bob, chain.issuer)]
    else:
        attempts = [sign(chain.issuer, Transfer(ASSET, alice, 1)), sign(chain.validators[0], Transfer(ASSET, alice, 1))]
    for tx in attempts:
        cause = refuse_transaction(chain, make_block, tx, AccountFrozen)
        assert cause.details == expected
    assert chain.balance(chain.alice) == 1_000


def test_invalid_account_frozen_mint_to(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _freeze(chain, sign, make_block, ASSET, chain.bob)
    mint = sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 5))
    cause = refuse_transaction(chain, make_block, mint, AccountFrozen)
    assert cause.details == {"asset": ASSET, "account": chain.bob.public_key.hex(), "party": "recipient"}
    assert chain.supply() == 1_001_000


@pytest.mark.parametrize("kind", ["burn", "mint"])
def test_invalid_account_frozen_issuer(chain: Chain, sign: Sign, make_block: MakeBlock, kind: str) -> None:
    """A frozen issuer neither burns nor mints the asset it is frozen in (not even to others)."""
    _freeze(chain, sign, make_block, ASSET, chain.issuer)
    body = Burn(ASSET, 5) if kind == "burn" else Mint(ASSET, chain.bob.public_key, 5)
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, body), AccountFrozen)
    assert cause.details == {"asset": ASSET, "account": chain.issuer.public_key.hex(), "party": "sender"}
    # It still burns and mints its other assets.
    by = Nonces(chain, sign)
    _commit(chain, make_block, by(chain.issuer, Mint(BOND, chain.alice.public_key, 5)), by(chain.issuer, Burn(BOND, 7)))
    assert chain.supply() == 1_001_000 and chain.supply(BOND) == 10_498


def test_invalid_account_frozen_in_the_same_block(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    freeze = sign(CAROL, Freeze(ASSET, chain.alice.public_key))
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1))
    cause = refuse_transaction(chain, make_block, tx, AccountFrozen, before=[freeze])
    assert cause.details["party"] == "sender"
