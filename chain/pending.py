"""The state's entries, and a block's working copy of them.

State is a set of entries, each under a key that starts with its table's letter:

=====  ==================================  ======================================
table  key after the letter                value
=====  ==================================  ======================================
``a``  account                             ``Account``: nonce and roles
``b``  asset, account                      balance (smallest units)
``d``  asset                               ``AssetTerms``, fixed at issue
``s``  asset                               ``AssetState``: supply, holders, lapse
``p``  asset, account                      approved holder of a restricted asset
``f``  asset, account                      frozen in the asset
``e``  expiry time (8 bytes), asset         an asset still to lapse
``n``  bond                                ``BondTerms``, fixed at issue
``o``  bond                                ``BondState``: payments made, proceeds
``q``  time (8 bytes), bond                a bond's next scheduled step
``m``  bond                                a bond in default: the payment it missed
``c``  (none)                              where the look at missed bonds goes on
``g``  bond                                its ``Offering``
``j``  bond, sequence (4 bytes)            a ``Subscription``, in subscription order
``k``  bond, account                       the account's subscription's sequence
``u``  bond, purpose                       proceeds spent for that purpose
``t``  trade id                            a settled trade
``v``  (none)                              the ordered validator set of the next
                                           height: ``ValidatorRecord`` s
``w``  (none)                              the ``ScheduledSet`` approved in this
                                           block, for two heights on
``r``  proposal id (8 bytes)               a ``Proposal``
``y``  proposal id (8 bytes)               an open proposal: the height from
                                           which it is expired (ids run in
                                           expiry order)
``h``  proposer                            how many proposals it has open
``x``  (none)                              the last proposal id given
``i``  (none)                              how many accounts hold the issuer role
=====  ==================================  ======================================

An asset in a key is ``asset_key(asset)`` (its id's length, then the id), an
account its 32-byte public key. Balances are keyed by asset first, so the
holders of an asset are one range of keys in account order: the order in which
expiry returns them. A zero, empty or false value is an absent entry. The
state root commits to every entry (see ``state_root``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from mura.chain import codec
from mura.chain.assets import AssetState, AssetTerms, asset_key, split_asset_key
from mura.chain.block import MAX_BLOCK_BYTES, MAX_BLOCK_TRANSACTIONS, MAX_VALIDATORS
from mura.chain.bonds import PaymentEvent
from mura.chain.governance import (
    DEFAULT_PROPOSAL_LIFETIME_BLOCKS,
    ValidatorSet,
    decode_validator_set,
    encode_validator_set,
)
from mura.chain.state_root import LatticeHash, update_lattice

#: The largest supply of an asset (and so the largest balance) that can exist.
MAX_SUPPLY = codec.MAX_INT

ACCOUNT_PREFIX = b"a"
BALANCE_PREFIX = b"b"
ASSET_PREFIX = b"d"
ASSET_STATE_PREFIX = b"s"
APPROVAL_PREFIX = b"p"
FROZEN_PREFIX = b"f"
EXPIRY_PREFIX = b"e"
VALIDATORS_KEY = b"v"
BOND_PREFIX = b"n"
BOND_STATE_PREFIX = b"o"
BOND_QUEUE_PREFIX = b"q"
MISSED_PREFIX = b"m"
MISSED_CURSOR_KEY = b"c"
OFFERING_PREFIX = b"g"
SUBSCRIPTION_PREFIX = b"j"
SUBSCRIBER_PREFIX = b"k"
PROCEEDS_USE_PREFIX = b"u"
TRADE_PREFIX = b"t"
SCHEDULED_KEY = b"w"
PROPOSAL_PREFIX = b"r"
OPEN_PROPOSAL_PREFIX = b"y"
OPEN_COUNT_PREFIX = b"h"
LAST_PROPOSAL_KEY = b"x"
ISSUER_COUNT_KEY = b"i"

_TRUE = codec.encode(True)
#: Queued expiries read at a time while looking for those due.
_EXPIRY_PAGE = 16


class Role(enum.IntFlag):
    """What an account may do beyond holding and sending assets."""

    NONE = 0
    #: May issue new assets.
    ISSUER = 1
    #: Takes part in consensus.
    VALIDATOR = 2


@dataclass(frozen=True, slots=True)
class Account:
    """One account's entry in the state (its balances are entries of their own)."""

    #: The nonce its next transaction must carry.
    nonce: int = 0
    #: ``Role`` flags.
    roles: Role = Role.NONE

    def encode(self) -> bytes:
        return codec.encode([self.nonce, int(self.roles)])

    @classmethod
    def decode(cls, data: bytes) -> Account:
        nonce, roles = codec.read_fields(codec.decode(data), "account", 2)
        return cls(
            codec.read_int(nonce, "account.nonce"),
            Role(codec.read_int(roles, "account.roles", maximum=int(Role.ISSUER | Role.VALIDATOR))),
        )


def account_key(address: bytes) -> bytes:
    """The state entry key of an account."""
    return ACCOUNT_PREFIX + address


def balance_key(asset: str, address: bytes) -> bytes:
    """The state entry key of an account's balance of an asset."""
    return BALANCE_PREFIX + asset_key(asset) + address


def asset_terms_key(asset: str) -> bytes:
    return ASSET_PREFIX + asset_key(asset)


def asset_state_key(asset: str) -> bytes:
    return ASSET_STATE_PREFIX + asset_key(asset)


def approval_key(asset: str, address: bytes) -> bytes:
    return APPROVAL_PREFIX + asset_key(asset) + address


def frozen_key(asset: str, address: bytes) -> bytes:
    return FROZEN_PREFIX + asset_key(asset) + address


def encode_validators(validators: ValidatorSet) -> bytes:
    return encode_validator_set(validators)


def decode_validators(data: bytes) -> ValidatorSet:
    return decode_validator_set(data, MAX_VALIDATORS)


def proposal_key(proposal: int) -> bytes:
    return PROPOSAL_PREFIX + proposal.to_bytes(8, "big")


def open_proposal_key(proposal: int) -> bytes:
    return OPEN_PROPOSAL_PREFIX + proposal.to_bytes(8, "big")


def open_count_key(proposer: bytes) -> bytes:
    return OPEN_COUNT_PREFIX + proposer


def expiry_key(expiry_ms: int, asset: str) -> bytes:
    """The state entry key that queues ``asset`` to lapse: expiry first, so the queue is in time order."""
    return EXPIRY_PREFIX + expiry_ms.to_bytes(8, "big") + asset_key(asset)


def bond_key(bond: str) -> bytes:
    return BOND_PREFIX + asset_key(bond)


def bond_state_key(bond: str) -> bytes:
    return BOND_STATE_PREFIX + asset_key(bond)


def bond_queue_key(time_ms: int, bond: str) -> bytes:
    """Queues ``bond``'s next scheduled step at ``time_ms``: time first, so the queue is in time order."""
    return BOND_QUEUE_PREFIX + time_ms.to_bytes(8, "big") + asset_key(bond)


def missed_key(bond: str) -> bytes:
    return MISSED_PREFIX + asset_key(bond)


def offering_key(bond: str) -> bytes:
    return OFFERING_PREFIX + asset_key(bond)


def subscription_key(bond: str, sequence: int) -> bytes:
    return SUBSCRIPTION_PREFIX + asset_key(bond) + sequence.to_bytes(4, "big")


def subscriber_key(bond: str, address: bytes) -> bytes:
    return SUBSCRIBER_PREFIX + asset_key(bond) + address


def proceeds_use_key(bond: str, purpose: str) -> bytes:
    return PROCEEDS_USE_PREFIX + asset_key(bond) + purpose.encode()


def trade_key(trade_id: bytes) -> bytes:
    return TRADE_PREFIX + trade_id


def decode_balance(data: bytes) -> int:
    return codec.read_int(codec.decode(data), "balance")


class StateReader(Protocol):
    """Read access to a committed state (the store, or an in-memory copy)."""

    def load_account(self, address: bytes) -> Account: ...

    def load_balance(self, address: bytes, asset: str) -> int: ...

    def load_asset(self, asset: str) -> AssetTerms | None: ...

    def load_asset_state(self, asset: str) -> AssetState: ...

    def load_entry(self, key: bytes) -> bytes | None:
        """The raw value of any state entry (None when absent)."""
        ...

    def load_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` entries whose key starts with ``prefix``, in key order, each as
        ``(the key after the prefix, value)``, starting after ``prefix + after`` (b"": from the first)."""
        ...

    def load_validators(self) -> ValidatorSet:
        """The state entry ``v``: after block h, the set that decides height h+1."""
        ...

    def load_lattice(self) -> LatticeHash: ...


@dataclass(frozen=True, slots=True)
class ChainRules:
    """The network-wide parameters every validator applies identically."""

    #: The network's name; every transaction and block must carry it.
    chain_id: str
    #: Largest total size of a block's encoded transactions.
    max_block_bytes: int = MAX_BLOCK_BYTES
    #: Most transactions in one block.
    max_block_transactions: int = MAX_BLOCK_TRANSACTIONS
    #: Blocks a governance proposal stays open: one created in block c is expired from c + this.
    proposal_lifetime_blocks: int = DEFAULT_PROPOSAL_LIFETIME_BLOCKS


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What a block changed: the entries to write and the resulting root."""

    #: Every changed state entry: its key and its new value (None: deleted).
    entries: dict[bytes, bytes | None]
    #: New account entries by public key.
    accounts: dict[bytes, Account]
    #: New balances by (asset, account).
    balances: dict[tuple[str, bytes], int]
    #: The (asset, account) pairs whose balance was zero before the block and is not now.
    first_holdings: tuple[tuple[str, bytes], ...]
    #: Assets issued by the block.
    assets: dict[str, AssetTerms]
    #: New asset states by asset.
    asset_states: dict[str, AssetState]
    #: The state entry ``v`` afterwards: the validator set of the next height.
    validators: ValidatorSet
    #: The lattice hash of the whole state afterwards.
    lattice: LatticeHash
    #: ``lattice.root()``, as the header must carry it.
    state_root: bytes
    #: Each holder's share of the payments the chain made, for the history indexes.
    events: tuple[PaymentEvent, ...] = ()


class PendingState:
    """A block's working copy: reads fall through to the committed state.

    ``timestamp_ms`` is the block's timestamp (0 where no block is being built, as
    in mempool admission).
    """

    def __init__(
        self,
        base: StateReader,
        *,
        timestamp_ms: int = 0,
        height: int = 0,
        proposal_lifetime_blocks: int = DEFAULT_PROPOSAL_LIFETIME_BLOCKS,
    ) -> None:
        self._base = base
        self.timestamp_ms = timestamp_ms
        #: The height of the block being built or applied (0 in mempool admission).
        self.height = height
        #: ``ChainRules.proposal_lifetime_blocks``.
        self.proposal_lifetime_blocks = proposal_lifetime_blocks
        #: Each holder's share of the payments the chain made in this block, in order.
        self.events: list[PaymentEvent] = []
        self._entries: dict[bytes, bytes | None] = {}
        self._original_entries: dict[bytes, bytes | None] = {}
        self._accounts: dict[bytes, Account] = {}
        self._original_accounts: dict[bytes, Account] = {}
        self._balances: dict[tuple[str, bytes], int] = {}
        self._original_balances: dict[tuple[str, bytes], int] = {}
        self._assets: dict[str, AssetTerms | None] = {}
        self._issued: dict[str, AssetTerms] = {}
        self._asset_states: dict[str, AssetState] = {}
        self._original_asset_states: dict[str, AssetState] = {}
        self._flags: dict[bytes, bool] = {}
        self._original_flags: dict[bytes, bool] = {}
        self._validators: ValidatorSet | None = None
        self._original_validators: ValidatorSet | None = None

    # accounts

    def account(self, address: bytes) -> Account:
        account = self._accounts.get(address)
        if account is None:
            account = self._base.load_account(address)
            self._accounts[address] = account
            self._original_accounts[address] = account
        return account

    def set_account(self, address: bytes, account: Account) -> None:
        self.account(address)
        self._accounts[address] = account

    # balances

    def balance(self, address: bytes, asset: str) -> int:
        key = (asset, address)
        balance = self._balances.get(key)
        if balance is None:
            balance = self._base.load_balance(address, asset)
            self._balances[key] = balance
            self._original_balances[key] = balance
        return balance

    def set_balance(self, address: bytes, asset: str, balance: int) -> None:
        self.balance(address, asset)
        self._balances[(asset, address)] = balance

    def holders_after(self, asset: str, after: bytes, limit: int) -> list[bytes]:
        """Up to ``limit`` accounts holding ``asset`` in the committed state, in account order,
        after ``after``. (Their balances now: ``balance``.)"""
        return [
            address for address, _ in self._base.load_entries_after(BALANCE_PREFIX + asset_key(asset), after, limit)
        ]

    # assets

    def asset(self, asset: str) -> AssetTerms | None:
        if asset not in self._assets:
            self._assets[asset] = self._base.load_asset(asset)
        return self._assets[asset]

    def issue(self, terms: AssetTerms) -> None:
        self._assets[terms.asset] = terms
        self._issued[terms.asset] = terms

    def asset_state(self, asset: str) -> AssetState:
        state = self._asset_states.get(asset)
        if state is None:
            state = self._base.load_asset_state(asset)
            self._asset_states[asset] = state
            self._original_asset_states[asset] = state
        return state

    def set_asset_state(self, asset: str, state: AssetState) -> None:
        self.asset_state(asset)
        self._asset_states[asset] = state

    # entries of other tables (bonds, offerings, trades), as raw values

    def entry(self, key: bytes) -> bytes | None:
        if key in self._entries:
            return self._entries[key]
        value = self._base.load_entry(key)
        self._entries[key] = self._original_entries[key] = value
        return value

    def set_entry(self, key: bytes, value: bytes | None) -> None:
        self.entry(key)
        self._entries[key] = value

    def committed_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """``StateReader.load_entries_after`` of the committed state (not this block's changes)."""
        return self._base.load_entries_after(prefix, after, limit)

    # approvals and freezes

    def flag(self, key: bytes) -> bool:
        value = self._flags.get(key)
        if value is None:
            value = self._base.load_entry(key) is not None
            self._flags[key] = value
            self._original_flags[key] = value
        return value

    def set_flag(self, key: bytes, value: bool) -> None:
        self.flag(key)
        self._flags[key] = value

    def approved(self, terms: AssetTerms, address: bytes) -> bool:
        """Whether ``address`` may hold and move the restricted asset: its issuer always may."""
        return address == terms.issuer or self.flag(approval_key(terms.asset, address))

    def frozen(self, asset: str, address: bytes) -> bool:
        # The asset's count of frozen accounts spares every transfer of an asset nobody is
        # frozen in two reads.
        return self.asset_state(asset).frozen > 0 and self.flag(frozen_key(asset, address))

    # expiries and validators

    def due_expiries(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` ``(expiry_ms, asset)`` queued to lapse in the committed state whose
        expiry time the block's timestamp has reached, soonest first (then by id), less any
        this block has taken off the queue."""
        due: list[tuple[int, str]] = []
        after = b""
        # Small pages: most blocks find the first queued expiry still ahead and read no more.
        page = min(limit, _EXPIRY_PAGE)
        while len(due) < limit:
            entries = self._base.load_entries_after(EXPIRY_PREFIX, after, page)
            for suffix, _ in entries:
                expiry_ms, asset = int.from_bytes(suffix[:8], "big"), split_asset_key(suffix[8:])[0]
                if expiry_ms > self.timestamp_ms:
                    return due
                if self.flag(expiry_key(expiry_ms, asset)):
                    due.append((expiry_ms, asset))
                    if len(due) >= limit:
                        return due
            if len(entries) < page:
                break
            after = entries[-1][0]
        return due

    @property
    def validators(self) -> ValidatorSet:
        """The state entry ``v`` as this block has it: once the block's automatic steps ran,
        the set of the next height."""
        if self._validators is None:
            self._validators = self._original_validators = self._base.load_validators()
        return self._validators

    @validators.setter
    def validators(self, value: ValidatorSet) -> None:
        _ = self.validators
        self._validators = value

    @property
    def current_validators(self) -> ValidatorSet:
        """The set that decides this block: ``v`` as committed before it (in mempool
        admission, the set of the next block)."""
        _ = self.validators
        assert self._original_validators is not None
        return self._original_validators

    def finish(self) -> StateChanges:
        """The touched entries and the state root they produce."""
        entries: list[tuple[bytes, bytes | None, bytes | None]] = []
        accounts = {address: new for address, new in self._accounts.items() if new != self._original_accounts[address]}
        for address, account in accounts.items():
            entries.append(
                (account_key(address), account_entry(self._original_accounts[address]), account_entry(account))
            )
        balances: dict[tuple[str, bytes], int] = {}
        first_holdings: list[tuple[str, bytes]] = []
        # The holder counts follow from the balances; counted on a copy, so finishing twice gives one answer.
        new_states = dict(self._asset_states)
        holders: dict[str, int] = {}
        for pair, balance in self._balances.items():
            original = self._original_balances[pair]
            if balance == original:
                continue
            balances[pair] = balance
            asset, address = pair
            entries.append((balance_key(asset, address), balance_entry(original), balance_entry(balance)))
            if (original == 0) != (balance == 0):
                holders[asset] = holders.get(asset, 0) + (1 if original == 0 else -1)
                if original == 0:
                    first_holdings.append(pair)
        for asset, change in holders.items():
            state = new_states[asset] if asset in new_states else self.asset_state(asset)
            new_states[asset] = replace(state, holders=state.holders + change)
        for asset, terms in self._issued.items():
            entries.append((asset_terms_key(asset), None, terms.encode()))
        asset_states = {asset: new for asset, new in new_states.items() if new != self._original_asset_states[asset]}
        for asset, state in asset_states.items():
            entries.append(
                (
                    asset_state_key(asset),
                    asset_state_entry(self._original_asset_states[asset]),
                    asset_state_entry(state),
                )
            )
        for key, value in self._flags.items():
            if value != self._original_flags[key]:
                entries.append((key, _TRUE if self._original_flags[key] else None, _TRUE if value else None))
        for key, raw in self._entries.items():
            if raw != self._original_entries[key]:
                entries.append((key, self._original_entries[key], raw))
        validators = self.validators
        if validators != self._original_validators:
            entries.append(
                (VALIDATORS_KEY, validators_entry(self._original_validators or ()), validators_entry(validators))
            )
        lattice = update_lattice(self._base.load_lattice(), entries)
        return StateChanges(
            entries={key: new for key, _, new in entries},
            accounts=accounts,
            balances=balances,
            first_holdings=tuple(first_holdings),
            assets=dict(self._issued),
            asset_states=asset_states,
            validators=validators,
            lattice=lattice,
            state_root=lattice.root(),
            events=tuple(self.events),
        )


def issue(pending: PendingState, terms: AssetTerms, allocations: Iterable[tuple[bytes, int]]) -> None:
    """Create ``terms``' asset, crediting each allocation (the supply is their sum), and
    queue its expiry."""
    pending.issue(terms)
    supply = 0
    for address, amount in allocations:
        pending.set_balance(address, terms.asset, pending.balance(address, terms.asset) + amount)
        supply += amount
    pending.set_asset_state(terms.asset, AssetState(supply=supply))
    if terms.expiry_ms:
        pending.set_flag(expiry_key(terms.expiry_ms, terms.asset), True)


# A zero or empty value is an absent entry, so the empty state has the empty lattice.


def account_entry(account: Account) -> bytes | None:
    """The state entry value of an account, or None for an account with no nonce and no role."""
    return None if account == Account() else account.encode()


def balance_entry(balance: int) -> bytes | None:
    return codec.encode(balance) if balance else None


def asset_state_entry(state: AssetState) -> bytes | None:
    return None if state == AssetState() else state.encode()


def validators_entry(validators: ValidatorSet) -> bytes | None:
    return encode_validators(validators) if validators else None


class MemoryState:
    """A committed state held in memory: the simulator's and the tests' store.

    Implements ``StateReader`` like the LevelDB ``Store`` does, over the same
    entries, and commits ``StateChanges`` the same way, without blocks or indexes.
    """

    def __init__(self) -> None:
        #: Every state entry by key.
        self.entries: dict[bytes, bytes] = {}
        self.lattice = LatticeHash()

    def load_account(self, address: bytes) -> Account:
        value = self.entries.get(account_key(address))
        return Account() if value is None else Account.decode(value)

    def load_balance(self, address: bytes, asset: str) -> int:
        value = self.entries.get(balance_key(asset, address))
        return 0 if value is None else decode_balance(value)

    def load_asset(self, asset: str) -> AssetTerms | None:
        value = self.entries.get(asset_terms_key(asset))
        return None if value is None else AssetTerms.decode(value)

    def load_asset_state(self, asset: str) -> AssetState:
        value = self.entries.get(asset_state_key(asset))
        return AssetState() if value is None else AssetState.decode(value)

    def load_entry(self, key: bytes) -> bytes | None:
        return self.entries.get(key)

    def load_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        suffixes = sorted(
            key[len(prefix) :] for key in self.entries if key.startswith(prefix) and key[len(prefix) :] > after
        )
        return [(suffix, self.entries[prefix + suffix]) for suffix in suffixes[:limit]]

    def load_validators(self) -> ValidatorSet:
        value = self.entries.get(VALIDATORS_KEY)
        return () if value is None else decode_validators(value)

    def load_lattice(self) -> LatticeHash:
        return self.lattice

    def commit(self, changes: StateChanges) -> None:
        for key, value in changes.entries.items():
            if value is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = value
        self.lattice = changes.lattice

    # For tests and audits: the state as a whole.

    def assets(self) -> dict[str, AssetTerms]:
        terms = (AssetTerms.decode(value) for key, value in self.entries.items() if key.startswith(ASSET_PREFIX))
        return {asset.asset: asset for asset in terms}

    def balances(self, asset: str) -> dict[bytes, int]:
        """Every positive balance of ``asset`` by account."""
        prefix = BALANCE_PREFIX + asset_key(asset)
        return {
            key[len(prefix) :]: decode_balance(value) for key, value in self.entries.items() if key.startswith(prefix)
        }
