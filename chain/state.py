"""The state transition, written as a specification.

``apply_block`` is a short list of named steps; each ``validate_*`` step states
one rule in its docstring and raises a typed ``Invalid`` when it is broken, and
each ``process_*`` step changes state only after every rule for it has passed,
so a refused transaction leaves no trace. The result is a ``StateChanges``
(the touched entries and the new state root) that the store writes in one
atomic batch together with the block.

State is a set of entries: one per account (``a`` + public key), the total
supply (``s``) and the ordered validator set (``v``). The state root commits to
all of them (see ``state_root``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from mura.chain import codec
from mura.chain.block import (
    MAX_BLOCK_BYTES,
    MAX_BLOCK_TRANSACTIONS,
    MAX_VALIDATORS,
    ZERO_HASH,
    Block,
    Header,
    assembled_block,
    transaction_root,
)
from mura.chain.errors import (
    BadSignature,
    BlockTooLarge,
    DuplicateTransactionInBlock,
    InsufficientBalance,
    InvalidBlockTransaction,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    NonPositiveAmount,
    NotAnIssuer,
    StateRootMismatch,
    SupplyOverflow,
    TimestampBeforeParent,
    UnknownKind,
    UnknownProposer,
    WrongBlockChainId,
    WrongChainId,
    WrongHeight,
    WrongParent,
)
from mura.chain.keys import PUBLIC_KEY_SIZE, SignatureCache, verify_signature
from mura.chain.state_root import LatticeHash, update_lattice
from mura.chain.transaction import KINDS, MAX_CHAIN_ID_LENGTH, Burn, Mint, Transaction, Transfer

#: The largest total supply (and so the largest balance) that can exist.
MAX_SUPPLY = codec.MAX_INT

ACCOUNT_PREFIX = b"a"
SUPPLY_KEY = b"s"
VALIDATORS_KEY = b"v"


class Role(enum.IntFlag):
    """What an account may do beyond holding and sending funds."""

    NONE = 0
    #: May mint and burn.
    ISSUER = 1
    #: Takes part in consensus.
    VALIDATOR = 2


@dataclass(frozen=True, slots=True)
class Account:
    """One account's entry in the state."""

    #: Smallest units held.
    balance: int = 0
    #: The nonce its next transaction must carry.
    nonce: int = 0
    #: ``Role`` flags.
    roles: Role = Role.NONE

    def encode(self) -> bytes:
        return codec.encode([self.balance, self.nonce, int(self.roles)])

    @classmethod
    def decode(cls, data: bytes) -> Account:
        balance, nonce, roles = codec.read_fields(codec.decode(data), "account", 3)
        return cls(
            codec.read_int(balance, "account.balance"),
            codec.read_int(nonce, "account.nonce"),
            Role(codec.read_int(roles, "account.roles", maximum=int(Role.ISSUER | Role.VALIDATOR))),
        )


def account_key(address: bytes) -> bytes:
    """The state entry key of an account."""
    return ACCOUNT_PREFIX + address


def encode_validators(validators: Sequence[bytes]) -> bytes:
    return codec.encode(list(validators))


def decode_validators(data: bytes) -> tuple[bytes, ...]:
    items = codec.read_list(codec.decode(data), "validators", max_length=MAX_VALIDATORS)
    return tuple(codec.read_bytes(item, "validators[]", length=PUBLIC_KEY_SIZE) for item in items)


class StateReader(Protocol):
    """Read access to a committed state (the store, or an in-memory copy)."""

    def load_account(self, address: bytes) -> Account: ...

    def load_supply(self) -> int: ...

    def load_validators(self) -> tuple[bytes, ...]: ...

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


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What a block changed: the entries to write and the resulting root."""

    #: New account entries by public key.
    accounts: dict[bytes, Account]
    #: Total supply afterwards.
    supply: int
    #: Validator set afterwards.
    validators: tuple[bytes, ...]
    #: The lattice hash of the whole state afterwards.
    lattice: LatticeHash
    #: ``lattice.root()``, as the header must carry it.
    state_root: bytes


class PendingState:
    """A block's working copy: reads fall through to the committed state."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._accounts: dict[bytes, Account] = {}
        self._original: dict[bytes, Account] = {}
        self._supply = base.load_supply()
        self._original_supply = self._supply
        self.validators = base.load_validators()
        self._original_validators = self.validators

    def account(self, address: bytes) -> Account:
        account = self._accounts.get(address)
        if account is None:
            account = self._base.load_account(address)
            self._accounts[address] = account
            self._original[address] = account
        return account

    def set_account(self, address: bytes, account: Account) -> None:
        self.account(address)
        self._accounts[address] = account

    @property
    def supply(self) -> int:
        return self._supply

    @supply.setter
    def supply(self, value: int) -> None:
        self._supply = value

    def finish(self) -> StateChanges:
        """The touched entries and the state root they produce."""
        changed = {address: new for address, new in self._accounts.items() if new != self._original[address]}
        entries = [
            (account_key(address), account_entry(self._original[address]), account_entry(new))
            for address, new in changed.items()
        ]
        if self._supply != self._original_supply:
            entries.append((SUPPLY_KEY, supply_entry(self._original_supply), supply_entry(self._supply)))
        if self.validators != self._original_validators:
            entries.append(
                (VALIDATORS_KEY, validators_entry(self._original_validators), validators_entry(self.validators))
            )
        lattice = update_lattice(self._base.load_lattice(), entries)
        return StateChanges(changed, self._supply, self.validators, lattice, lattice.root())


# A zero or empty value is an absent entry, so the empty state has the empty lattice.


def account_entry(account: Account) -> bytes | None:
    """The state entry value of an account, or None for an account that holds nothing."""
    return None if account == Account() else account.encode()


def supply_entry(supply: int) -> bytes | None:
    return codec.encode(supply) if supply else None


def validators_entry(validators: Sequence[bytes]) -> bytes | None:
    return encode_validators(validators) if validators else None


# --- blocks -------------------------------------------------------------------


def apply_block(
    state: StateReader,
    parent: Header,
    block: Block,
    *,
    rules: ChainRules,
    signatures: SignatureCache,
    verify_signatures: bool = True,
) -> StateChanges:
    """Check ``block`` against its parent and state; return the changes it makes.

    ``verify_signatures=False`` skips the transactions' signatures, and only them: for a
    block whose verified commit certificate shows a quorum (at least f+1 of them honest)
    checked every signature before committing it. The state root still binds the result.
    """
    validate_block_size(block, rules)
    validate_header(parent, block.header, rules, state.load_validators())
    validate_transaction_root(block)
    validate_unique_transactions(block)
    pending = PendingState(state)
    for index, transaction in enumerate(block.transactions):
        try:
            apply_transaction(
                pending, transaction, rules=rules, signatures=signatures, verify_signature=verify_signatures
            )
        except InvalidTransaction as error:
            raise InvalidBlockTransaction(index, error) from error
    changes = pending.finish()
    validate_state_root(block.header, changes)
    return changes


def validate_block_size(block: Block, rules: ChainRules) -> None:
    """A block holds at most ``max_block_transactions`` transactions of at most ``max_block_bytes`` in all."""
    count = len(block.transactions)
    size = block.transaction_bytes
    if count > rules.max_block_transactions or size > rules.max_block_bytes:
        raise BlockTooLarge(
            f"block has {count} transactions in {size} bytes; the limits are "
            f"{rules.max_block_transactions} transactions and {rules.max_block_bytes} bytes",
            transactions=count,
            bytes=size,
        )


def validate_header(parent: Header, header: Header, rules: ChainRules, validators: Sequence[bytes]) -> None:
    """A header extends its parent: same network, next height, parent's hash,
    no earlier timestamp, and a proposer from the validator set."""
    if header.chain_id != rules.chain_id:
        raise WrongBlockChainId(f"block is for chain {header.chain_id!r}, this is {rules.chain_id!r}")
    if header.height != parent.height + 1:
        raise WrongHeight(
            f"block height is {header.height}, expected {parent.height + 1}",
            expected=parent.height + 1,
            got=header.height,
        )
    if header.parent_hash != parent.hash:
        raise WrongParent(
            f"block's parent is {header.parent_hash.hex()}, the head is {parent.hash.hex()}",
            expected=parent.hash.hex(),
            got=header.parent_hash.hex(),
        )
    if header.timestamp_ms < parent.timestamp_ms:
        raise TimestampBeforeParent(
            f"block timestamp {header.timestamp_ms} is before its parent's {parent.timestamp_ms}"
        )
    if header.proposer not in validators:
        raise UnknownProposer(f"proposer {header.proposer.hex()} is not a validator")


def validate_transaction_root(block: Block) -> None:
    """The header's transaction root is the Merkle root of the block's transactions."""
    block.check_body()


def validate_unique_transactions(block: Block) -> None:
    """No transaction appears twice in a block."""
    if len({tx.hash for tx in block.transactions}) != len(block.transactions):
        raise DuplicateTransactionInBlock("block contains the same transaction twice")


def validate_state_root(header: Header, changes: StateChanges) -> None:
    """The header's state root equals the root of the state this node computed."""
    if header.state_root != changes.state_root:
        raise StateRootMismatch(
            f"header state root {header.state_root.hex()} differs from the computed {changes.state_root.hex()}",
            expected=changes.state_root.hex(),
            got=header.state_root.hex(),
        )


# --- transactions ---------------------------------------------------------------


def apply_transaction(
    pending: PendingState,
    transaction: Transaction,
    *,
    rules: ChainRules,
    signatures: SignatureCache,
    verify_signature: bool = True,
) -> None:
    """Validate ``transaction`` fully (its signature only if ``verify_signature``: see
    ``apply_block``), then apply it. A refusal changes nothing."""
    validate_chain_id(transaction, rules)
    validate_kind(transaction)
    if verify_signature:
        validate_signature(transaction, signatures)
    validate_nonce(pending, transaction)
    validate_body, process_body = _HANDLERS[transaction.kind]
    validate_body(pending, transaction)
    process_body(pending, transaction)
    process_nonce(pending, transaction)


def validate_chain_id(transaction: Transaction, rules: ChainRules) -> None:
    """A transaction names this network's chain id."""
    if transaction.chain_id != rules.chain_id:
        raise WrongChainId(
            f"transaction is for chain {transaction.chain_id!r}, this is {rules.chain_id!r}",
            expected=rules.chain_id,
            got=transaction.chain_id,
        )


def validate_kind(transaction: Transaction) -> None:
    """A transaction's kind is one this network knows."""
    if KINDS.get(transaction.kind) is not type(transaction.body):
        raise UnknownKind(f"unknown transaction kind {transaction.kind!r}", kind=transaction.kind)


def validate_signature(transaction: Transaction, signatures: SignatureCache) -> None:
    """The signature is the sender's over the transaction's signing payload.

    A transaction this node already verified is not verified again.
    """
    if transaction.hash in signatures:
        return
    if not verify_signature(transaction.sender, transaction.signature, transaction.signing_payload()):
        raise BadSignature("signature does not verify against the sender's key")
    signatures.add(transaction.hash)


def validate_nonce(pending: PendingState, transaction: Transaction) -> None:
    """A transaction carries exactly its sender's next nonce."""
    expected = pending.account(transaction.sender).nonce
    if transaction.nonce < expected:
        raise NonceTooLow(
            f"nonce {transaction.nonce} was already used; expected {expected}", expected=expected, got=transaction.nonce
        )
    if transaction.nonce > expected:
        raise NonceTooHigh(
            f"nonce {transaction.nonce} skips ahead; expected {expected}", expected=expected, got=transaction.nonce
        )


def validate_amount(amount: int) -> None:
    """Amounts are positive whole smallest units, at most the largest supply."""
    if amount <= 0:
        raise NonPositiveAmount(f"amount must be positive, got {amount}", amount=amount)
    if amount > MAX_SUPPLY:
        raise SupplyOverflow(f"amount {amount} exceeds the largest possible supply {MAX_SUPPLY}", amount=amount)


def validate_funds(account: Account, amount: int) -> None:
    """An account spends at most its balance."""
    balance = account.balance
    if balance < amount:
        raise InsufficientBalance(
            f"balance {balance} does not cover amount {amount}", balance=balance, amount=amount
        )


def validate_issuer(account: Account) -> None:
    """Only accounts with the issuer role mint or burn."""
    if Role.ISSUER not in account.roles:
        raise NotAnIssuer("only an issuer may mint or burn")


def validate_transfer(pending: PendingState, transaction: Transaction) -> None:
    """A transfer moves a positive amount the sender holds."""
    body = cast(Transfer, transaction.body)
    validate_amount(body.amount)
    validate_funds(pending.account(transaction.sender), body.amount)


def process_transfer(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Transfer, transaction.body)
    sender = pending.account(transaction.sender)
    pending.set_account(transaction.sender, Account(sender.balance - body.amount, sender.nonce, sender.roles))
    recipient = pending.account(body.recipient)
    pending.set_account(body.recipient, Account(recipient.balance + body.amount, recipient.nonce, recipient.roles))


def validate_mint(pending: PendingState, transaction: Transaction) -> None:
    """An issuer mints a positive amount that keeps the supply within bounds."""
    body = cast(Mint, transaction.body)
    validate_issuer(pending.account(transaction.sender))
    validate_amount(body.amount)
    if pending.supply + body.amount > MAX_SUPPLY:
        raise SupplyOverflow(
            f"minting {body.amount} would take the supply past {MAX_SUPPLY}", amount=body.amount, supply=pending.supply
        )


def process_mint(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Mint, transaction.body)
    recipient = pending.account(body.recipient)
    pending.set_account(body.recipient, Account(recipient.balance + body.amount, recipient.nonce, recipient.roles))
    pending.supply += body.amount


def validate_burn(pending: PendingState, transaction: Transaction) -> None:
    """An issuer burns a positive amount from its own balance."""
    body = cast(Burn, transaction.body)
    validate_issuer(pending.account(transaction.sender))
    validate_amount(body.amount)
    validate_funds(pending.account(transaction.sender), body.amount)


def process_burn(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Burn, transaction.body)
    sender = pending.account(transaction.sender)
    pending.set_account(transaction.sender, Account(sender.balance - body.amount, sender.nonce, sender.roles))
    pending.supply -= body.amount


def process_nonce(pending: PendingState, transaction: Transaction) -> None:
    sender = pending.account(transaction.sender)
    pending.set_account(transaction.sender, Account(sender.balance, sender.nonce + 1, sender.roles))


_Handler = Callable[[PendingState, Transaction], None]
_HANDLERS: dict[str, tuple[_Handler, _Handler]] = {
    Transfer.KIND: (validate_transfer, process_transfer),
    Mint.KIND: (validate_mint, process_mint),
    Burn.KIND: (validate_burn, process_burn),
}


# --- building blocks and genesis -------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    """A proposal: the block, the state it leads to, and what was left out and why."""

    block: Block
    changes: StateChanges
    refused: list[tuple[Transaction, InvalidTransaction]] = field(default_factory=list)


def build_block(
    state: StateReader,
    parent: Header,
    candidates: Iterable[Transaction],
    *,
    proposer: bytes,
    timestamp_ms: int,
    rules: ChainRules,
    signatures: SignatureCache,
) -> BuiltBlock:
    """Assemble the next block from ``candidates``, in order, leaving out any that
    fail a rule (they are reported in ``refused``) or would exceed the limits."""
    pending = PendingState(state)
    included: list[Transaction] = []
    refused: list[tuple[Transaction, InvalidTransaction]] = []
    size = 0
    seen: set[bytes] = set()
    for transaction in candidates:
        if len(included) >= rules.max_block_transactions or size + len(transaction.encoded) > rules.max_block_bytes:
            break
        if transaction.hash in seen:
            continue
        try:
            apply_transaction(pending, transaction, rules=rules, signatures=signatures)
        except InvalidTransaction as error:
            refused.append((transaction, error))
            continue
        seen.add(transaction.hash)
        included.append(transaction)
        size += len(transaction.encoded)
    changes = pending.finish()
    header = Header(
        chain_id=rules.chain_id,
        height=parent.height + 1,
        parent_hash=parent.hash,
        timestamp_ms=max(timestamp_ms, parent.timestamp_ms),
        proposer=proposer,
        transaction_root=transaction_root(included),
        state_root=changes.state_root,
    )
    return BuiltBlock(assembled_block(header, tuple(included)), changes, refused)


def build_genesis(
    *,
    chain_id: str,
    timestamp_ms: int,
    validators: Sequence[bytes],
    issuers: Iterable[bytes],
    allocations: Iterable[tuple[bytes, int]],
    document_hash: bytes = ZERO_HASH,
) -> tuple[Block, StateChanges]:
    """The genesis block (height 0) and the state it starts the chain with.

    ``document_hash`` (the hash of the whole genesis document) stands in the
    parent hash, so the genesis block hash commits to every setting of the
    network, not only to the state. Inputs are trusted here: the genesis
    loader reports a user's mistakes field by field before this runs.
    """
    if not 1 <= len(validators) <= MAX_VALIDATORS or len(set(validators)) != len(validators):
        raise ValueError(f"genesis needs 1 to {MAX_VALIDATORS} distinct validators, got {len(validators)}")
    if not 0 < len(chain_id) <= MAX_CHAIN_ID_LENGTH:
        raise ValueError(f"chain id must be 1 to {MAX_CHAIN_ID_LENGTH} characters")
    pending = PendingState(MemoryState())
    for address in validators:
        account = pending.account(address)
        pending.set_account(address, replace(account, roles=account.roles | Role.VALIDATOR))
    for address in issuers:
        account = pending.account(address)
        pending.set_account(address, replace(account, roles=account.roles | Role.ISSUER))
    for address, amount in allocations:
        if amount <= 0:
            raise ValueError(f"genesis allocation of {amount} is not positive")
        account = pending.account(address)
        pending.set_account(address, replace(account, balance=account.balance + amount))
        pending.supply += amount
    if pending.supply > MAX_SUPPLY:
        raise ValueError(f"genesis allocations total {pending.supply}, more than {MAX_SUPPLY}")
    pending.validators = tuple(validators)
    changes = pending.finish()
    header = Header(
        chain_id=chain_id,
        height=0,
        parent_hash=document_hash,
        timestamp_ms=timestamp_ms,
        proposer=bytes(PUBLIC_KEY_SIZE),
        transaction_root=transaction_root(()),
        state_root=changes.state_root,
    )
    return Block(header, ()), changes


class MemoryState:
    """A committed state held in memory: the simulator's and the tests' store.

    Implements ``StateReader`` like the LevelDB ``Store`` does, and commits
    ``StateChanges`` the same way, without blocks or indexes.
    """

    def __init__(self) -> None:
        self.accounts: dict[bytes, Account] = {}
        self.supply = 0
        self.validators: tuple[bytes, ...] = ()
        self.lattice = LatticeHash()

    def load_account(self, address: bytes) -> Account:
        return self.accounts.get(address, Account())

    def load_supply(self) -> int:
        return self.supply

    def load_validators(self) -> tuple[bytes, ...]:
        return self.validators

    def load_lattice(self) -> LatticeHash:
        return self.lattice

    def commit(self, changes: StateChanges) -> None:
        for address, account in changes.accounts.items():
            if account == Account():
                self.accounts.pop(address, None)
            else:
                self.accounts[address] = account
        self.supply = changes.supply
        self.validators = changes.validators
        self.lattice = changes.lattice
