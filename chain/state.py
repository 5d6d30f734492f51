"""The state transition, written as a specification.

``apply_block`` is a short list of named steps; each ``validate_*`` step states
one rule in its docstring and raises a typed ``Invalid`` when it is broken, and
each ``process_*`` step changes state only after every rule for it has passed,
so a refused transaction leaves no trace. The result is a ``StateChanges``
(the touched entries and the new state root) that the store writes in one
atomic batch together with the block.

The entries and their keys are described in ``pending``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from mura.chain import codec
from mura.chain.assets import (
    MAX_DECIMALS,
    AssetTerms,
    TransferPolicy,
    asset_id_problem,
    asset_name_problem,
)
from mura.chain.block import (
    MAX_VALIDATORS,
    ZERO_HASH,
    Block,
    Header,
    assembled_block,
    transaction_root,
)
from mura.chain.bond_rules import (
    next_bond_due_ms,
    process_bonds,
    process_cancel_subscription,
    process_issue_bond,
    process_open_offering,
    process_settle_trade,
    process_spend_proceeds,
    process_subscribe,
    validate_cancel_subscription,
    validate_issue_bond,
    validate_not_locked,
    validate_open_offering,
    validate_settle_trade,
    validate_spend_proceeds,
    validate_subscribe,
)
from mura.chain.checks import (
    expired,
    validate_amount,
    validate_approved,
    validate_asset,
    validate_asset_issuer,
    validate_funds,
    validate_memo,
    validate_new_asset,
    validate_not_chain_account,
    validate_not_frozen,
    validate_registrar,
)
from mura.chain.errors import (
    AssetExpired,
    AssetNotReissuable,
    BadSignature,
    BlockTooLarge,
    DuplicateTransactionInBlock,
    InvalidAssetTerms,
    InvalidBlockTransaction,
    InvalidTransaction,
    NextValidatorsMismatch,
    NonceTooHigh,
    NonceTooLow,
    StateRootMismatch,
    SupplyCapExceeded,
    SupplyOverflow,
    TimestampBeforeParent,
    UnknownKind,
    UnknownProposer,
    WrongBlockChainId,
    WrongChainId,
    WrongHeight,
    WrongParent,
)
from mura.chain.governance import ValidatorRecord, ValidatorSet, validator_keys, validators_hash
from mura.chain.governance_rules import (
    process_approve,
    process_proposal_expiries,
    process_propose,
    process_scheduled_set,
    validate_approve,
    validate_propose,
)
from mura.chain.keys import PUBLIC_KEY_SIZE, SignatureCache, verify_signature
from mura.chain.pending import (
    EXPIRY_PREFIX,
    ISSUER_COUNT_KEY,
    MAX_SUPPLY,
    Account,
    ChainRules,
    MemoryState,
    PendingState,
    Role,
    StateChanges,
    StateReader,
    approval_key,
    expiry_key,
    frozen_key,
    issue,
)
from mura.chain.transaction import (
    KINDS,
    MAX_CHAIN_ID_LENGTH,
    Approve,
    ApproveHolder,
    Burn,
    CancelSubscription,
    Freeze,
    IssueAsset,
    IssueBond,
    Mint,
    OpenOffering,
    Propose,
    RevokeHolder,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transaction,
    Transfer,
    Unfreeze,
)

#: Most balances the automatic expiry step returns to issuers in one block, over every
#: expiring asset together: an asset with more holders lapses over several blocks.
LAPSE_PER_BLOCK = 1_000


__all__ = [
    "MAX_SUPPLY",
    "Account",
    "ChainRules",
    "MemoryState",
    "PendingState",
    "Role",
    "StateChanges",
    "StateReader",
]

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
    validate_header(parent, block.header, rules, validator_keys(state.load_validators()))
    validate_transaction_root(block)
    validate_unique_transactions(block)
    pending = PendingState(
        state,
        timestamp_ms=block.header.timestamp_ms,
        height=block.header.height,
        proposal_lifetime_blocks=rules.proposal_lifetime_blocks,
    )
    process_automatic_steps(pending)
    for index, transaction in enumerate(block.transactions):
        try:
            apply_transaction(
                pending, transaction, rules=rules, signatures=signatures, verify_signature=verify_signatures
            )
        except InvalidTransaction as error:
            raise InvalidBlockTransaction(index, error) from error
    changes = pending.finish()
    validate_state_root(block.header, changes)
    validate_next_validators(block.header, changes)
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


def validate_next_validators(header: Header, changes: StateChanges) -> None:
    """The header's ``next_validators_hash`` commits to the keys, in order, of the set the
    block leads to: the set that decides the next height."""
    expected = validators_hash(changes.validators)
    if header.next_validators_hash != expected:
        raise NextValidatorsMismatch(
            f"header's next validators hash {header.next_validators_hash.hex()} is not that of the next set, "
            f"{expected.hex()}",
            expected=expected.hex(),
            got=header.next_validators_hash.hex(),
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
    validate_body, process_body = HANDLERS[transaction.kind]
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


def validate_transfer(pending: PendingState, transaction: Transaction) -> None:
    """A transfer moves a positive amount of an issued asset that the sender holds, with a
    memo of at most 256 bytes, between accounts not frozen in it; a restricted asset only
    between its issuer and approved holders; an expired asset only back to its issuer."""
    body = cast(Transfer, transaction.body)
    validate_amount(body.amount)
    if body.memo:
        validate_memo(body.memo)
    terms = validate_asset(pending, body.asset)
    if expired(pending, terms) and body.recipient != terms.issuer:
        raise AssetExpired(f"{body.asset} has expired: it may only be sent back to its issuer", asset=body.asset)
    validate_not_chain_account(body.recipient, "recipient")
    validate_not_locked(pending, body.asset)
    # Most transfers are of an open asset nobody is frozen in: those checks cost nothing then.
    validate_not_frozen(pending, body.asset, transaction.sender, "sender")
    validate_not_frozen(pending, body.asset, body.recipient, "recipient")
    if terms.restricted:
        validate_approved(pending, terms, transaction.sender, "sender")
        validate_approved(pending, terms, body.recipient, "recipient")
    validate_funds(pending, transaction.sender, body.asset, body.amount)


def process_transfer(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Transfer, transaction.body)
    pending.set_balance(transaction.sender, body.asset, pending.balance(transaction.sender, body.asset) - body.amount)
    pending.set_balance(body.recipient, body.asset, pending.balance(body.recipient, body.asset) + body.amount)


def validate_mint(pending: PendingState, transaction: Transaction) -> None:
    """An asset's issuer, not frozen in it, mints a positive amount of a reissuable asset that
    has not expired, keeping its supply within its cap and within ``MAX_SUPPLY``, to an account
    not frozen in it (for a restricted asset, the issuer or an approved holder)."""
    body = cast(Mint, transaction.body)
    terms = validate_asset(pending, body.asset)
    validate_asset_issuer(terms, transaction.sender)
    validate_amount(body.amount)
    if not terms.reissuable:
        raise AssetNotReissuable(f"the supply of {body.asset} was fixed at issue", asset=body.asset)
    supply = pending.asset_state(body.asset)
    if expired(pending, terms):
        raise AssetExpired(f"{body.asset} has expired: no more may be minted", asset=body.asset)
    if terms.cap and supply.supply + body.amount > terms.cap:
        raise SupplyCapExceeded(
            f"minting {body.amount} would take the supply of {body.asset} from {supply.supply} "
            f"past its cap {terms.cap}",
            asset=body.asset,
            amount=body.amount,
            supply=supply.supply,
            cap=terms.cap,
        )
    if supply.supply + body.amount > MAX_SUPPLY:
        raise SupplyOverflow(
            f"minting {body.amount} would take the supply of {body.asset} past {MAX_SUPPLY}",
            asset=body.asset,
            amount=body.amount,
            supply=supply.supply,
        )
    validate_not_chain_account(body.recipient, "recipient")
    validate_not_frozen(pending, body.asset, transaction.sender, "sender")
    validate_not_frozen(pending, body.asset, body.recipient, "recipient")
    validate_approved(pending, terms, body.recipient, "recipient")


def process_mint(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Mint, transaction.body)
    pending.set_balance(body.recipient, body.asset, pending.balance(body.recipient, body.asset) + body.amount)
    state = pending.asset_state(body.asset)
    pending.set_asset_state(body.asset, replace(state, supply=state.supply + body.amount))


def validate_burn(pending: PendingState, transaction: Transaction) -> None:
    """An asset's issuer, not frozen in it, burns a positive amount of it from its own balance."""
    body = cast(Burn, transaction.body)
    terms = validate_asset(pending, body.asset)
    validate_asset_issuer(terms, transaction.sender)
    validate_amount(body.amount)
    validate_not_locked(pending, body.asset)
    validate_not_frozen(pending, body.asset, transaction.sender, "sender")
    validate_funds(pending, transaction.sender, body.asset, body.amount)


def process_burn(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Burn, transaction.body)
    pending.set_balance(transaction.sender, body.asset, pending.balance(transaction.sender, body.asset) - body.amount)
    state = pending.asset_state(body.asset)
    pending.set_asset_state(body.asset, replace(state, supply=state.supply - body.amount))


def validate_issue_asset(pending: PendingState, transaction: Transaction) -> None:
    """An account with the issuer role issues an asset under a new, valid id, with terms
    in bounds: a name of 1 to 64 characters, at most 18 decimals, the policy ``open`` or
    ``restricted``, an initial supply within ``MAX_SUPPLY`` (positive if the supply is
    fixed), a cap only on a reissuable asset and not below the initial supply, and an
    expiry time, if any, after the block's timestamp."""
    body = cast(IssueAsset, transaction.body)
    validate_new_asset(pending, transaction.sender, body.asset, "an asset")
    problem_field, problem = _terms_problem(body, pending.timestamp_ms)
    if problem is not None:
        raise InvalidAssetTerms(problem, field=problem_field)


def _terms_problem(body: IssueAsset, timestamp_ms: int) -> tuple[str, str | None]:
    """The first field of ``body``'s terms that is out of bounds, and why (None if none)."""
    name_problem = asset_name_problem(body.name)
    if name_problem is not None:
        return "name", name_problem
    if body.decimals > MAX_DECIMALS:
        return "decimals", f"decimals must be 0 to {MAX_DECIMALS}, got {body.decimals}"
    if body.policy not in {policy.value for policy in TransferPolicy}:
        return "policy", f"the transfer policy must be open or restricted, got {body.policy!r}"
    if body.supply > MAX_SUPPLY:
        return "supply", f"the initial supply must be at most {MAX_SUPPLY}"
    if not body.reissuable and body.supply == 0:
        return "supply", "an asset whose supply is fixed at issue needs a positive initial supply"
    if body.cap and not body.reissuable:
        return "cap", "only a reissuable asset has a cap: a fixed supply is its own cap"
    if body.cap and body.cap < body.supply:
        return "cap", f"the cap {body.cap} is below the initial supply {body.supply}"
    if body.expiry_ms and body.expiry_ms <= timestamp_ms:
        return "expiry_ms", f"the expiry time {body.expiry_ms} is not after the block's timestamp {timestamp_ms}"
    return "", None


def process_issue_asset(pending: PendingState, transaction: Transaction) -> None:
    body = cast(IssueAsset, transaction.body)
    terms = AssetTerms(
        asset=body.asset,
        name=body.name,
        decimals=body.decimals,
        issuer=transaction.sender,
        reissuable=body.reissuable,
        cap=body.cap,
        registrar=body.registrar or transaction.sender,
        policy=TransferPolicy(body.policy),
        expiry_ms=body.expiry_ms,
    )
    issue(pending, terms, [(transaction.sender, body.supply)] if body.supply else [])


def validate_registrar_action(pending: PendingState, transaction: Transaction) -> None:
    """The registrar of an issued asset approves or revokes a holder, or freezes or unfreezes an account."""
    body = cast(ApproveHolder, transaction.body)
    terms = validate_asset(pending, body.asset)
    validate_registrar(terms, transaction.sender)


def process_approve_holder(pending: PendingState, transaction: Transaction) -> None:
    body = cast(ApproveHolder, transaction.body)
    pending.set_flag(approval_key(body.asset, body.account), True)


def process_revoke_holder(pending: PendingState, transaction: Transaction) -> None:
    body = cast(RevokeHolder, transaction.body)
    pending.set_flag(approval_key(body.asset, body.account), False)


def process_freeze(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Freeze, transaction.body)
    set_frozen(pending, body.asset, body.account, True)


def process_unfreeze(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Unfreeze, transaction.body)
    set_frozen(pending, body.asset, body.account, False)


def set_frozen(pending: PendingState, asset: str, account: bytes, frozen: bool) -> None:
    """Freeze or unfreeze ``account`` in ``asset``, keeping the asset's count of frozen accounts."""
    if pending.frozen(asset, account) == frozen:
        return
    pending.set_flag(frozen_key(asset, account), frozen)
    state = pending.asset_state(asset)
    pending.set_asset_state(asset, replace(state, frozen=state.frozen + (1 if frozen else -1)))


def process_nonce(pending: PendingState, transaction: Transaction) -> None:
    sender = pending.account(transaction.sender)
    pending.set_account(transaction.sender, Account(sender.nonce + 1, sender.roles))


_Handler = Callable[[PendingState, Transaction], None]
#: Each kind's rules and its state change.
HANDLERS: dict[str, tuple[_Handler, _Handler]] = {
    Transfer.KIND: (validate_transfer, process_transfer),
    Mint.KIND: (validate_mint, process_mint),
    Burn.KIND: (validate_burn, process_burn),
    IssueAsset.KIND: (validate_issue_asset, process_issue_asset),
    IssueBond.KIND: (validate_issue_bond, process_issue_bond),
    OpenOffering.KIND: (validate_open_offering, process_open_offering),
    Subscribe.KIND: (validate_subscribe, process_subscribe),
    CancelSubscription.KIND: (validate_cancel_subscription, process_cancel_subscription),
    SettleTrade.KIND: (validate_settle_trade, process_settle_trade),
    SpendProceeds.KIND: (validate_spend_proceeds, process_spend_proceeds),
    ApproveHolder.KIND: (validate_registrar_action, process_approve_holder),
    RevokeHolder.KIND: (validate_registrar_action, process_revoke_holder),
    Freeze.KIND: (validate_registrar_action, process_freeze),
    Unfreeze.KIND: (validate_registrar_action, process_unfreeze),
    Propose.KIND: (validate_propose, process_propose),
    Approve.KIND: (validate_approve, process_approve),
}


# --- automatic steps ---------------------------------------------------------------


def process_automatic_steps(pending: PendingState) -> None:
    """What the chain does by itself before a block's transactions: the validator set
    and roles approved in the block before, expired proposals, lapses, then bonds'
    allotments and payments."""
    process_scheduled_set(pending)
    process_proposal_expiries(pending)
    process_expiries(pending)
    process_bonds(pending)


def next_due_ms(state: StateReader) -> int | None:
    """The time of the state's next automatic step (the soonest expiry of an asset still to
    lapse, or bond step: already past while one goes on), or None."""
    first = state.load_entries_after(EXPIRY_PREFIX, b"", 1)
    times = [int.from_bytes(first[0][0][:8], "big")] if first else []
    bond_due = next_bond_due_ms(state)
    if bond_due is not None:
        times.append(bond_due)
    return min(times) if times else None


def process_expiries(pending: PendingState) -> None:
    """Before a block's transactions: each asset whose expiry time the block's timestamp
    has reached is expired, and its holders' balances return to its issuer, in account
    order, at most ``LAPSE_PER_BLOCK`` balances per block over all assets (soonest expiry
    first, then by id; an asset with no balance left to visit counts as one); an asset
    with more holders goes on lapsing in the next blocks. What returns is added to the
    asset's ``lapsed``; the supply does not change. Frozen balances lapse too: the freeze
    stops transactions, not the asset's own terms."""
    budget = LAPSE_PER_BLOCK
    for expiry_ms, asset in pending.due_expiries(LAPSE_PER_BLOCK):
        if budget <= 0:
            break
        terms = cast(AssetTerms, pending.asset(asset))
        state = pending.asset_state(asset)
        holders = pending.holders_after(asset, state.lapse_cursor, budget)
        complete = len(holders) < budget
        budget -= max(1, len(holders))
        lapsed = 0
        for address in holders:
            if address == terms.issuer:
                continue
            lapsed += pending.balance(address, asset)
            pending.set_balance(address, asset, 0)
        if lapsed:
            pending.set_balance(terms.issuer, asset, pending.balance(terms.issuer, asset) + lapsed)
        pending.set_asset_state(
            asset,
            replace(
                state,
                expired=True,
                lapsed=state.lapsed + lapsed,
                lapse_complete=complete,
                lapse_cursor=b"" if complete else holders[-1],
            ),
        )
        if complete:
            pending.set_flag(expiry_key(expiry_ms, asset), False)


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
    timestamp_ms = max(timestamp_ms, parent.timestamp_ms)
    pending = PendingState(
        state,
        timestamp_ms=timestamp_ms,
        height=parent.height + 1,
        proposal_lifetime_blocks=rules.proposal_lifetime_blocks,
    )
    process_automatic_steps(pending)
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
        timestamp_ms=timestamp_ms,
        proposer=proposer,
        transaction_root=transaction_root(included),
        state_root=changes.state_root,
        next_validators_hash=validators_hash(changes.validators),
    )
    return BuiltBlock(assembled_block(header, tuple(included)), changes, refused)


@dataclass(frozen=True, slots=True)
class GenesisAsset:
    """An asset the chain starts with, and who holds it."""

    terms: AssetTerms
    #: ``(account, smallest units)`` credited at genesis; the supply is their sum. Each
    #: account is an approved holder if the asset is restricted.
    allocations: tuple[tuple[bytes, int], ...] = ()


def build_genesis(
    *,
    chain_id: str,
    timestamp_ms: int,
    validators: Sequence[ValidatorRecord | bytes],
    issuers: Iterable[bytes],
    assets: Iterable[GenesisAsset] = (),
    document_hash: bytes = ZERO_HASH,
) -> tuple[Block, StateChanges]:
    """The genesis block (height 0) and the state it starts the chain with.

    ``document_hash`` (the hash of the whole genesis document) stands in the
    parent hash, so the genesis block hash commits to every setting of the
    network, not only to the state. Inputs are trusted here: the genesis
    loader reports a user's mistakes field by field before this runs. Validators given
    as bare keys (tests, the simulator) are named ``validator-<index>``, with no address.
    """
    records = _genesis_validators(validators)
    keys = validator_keys(records)
    if not 1 <= len(keys) <= MAX_VALIDATORS or len(set(keys)) != len(keys):
        raise ValueError(f"genesis needs 1 to {MAX_VALIDATORS} distinct validators, got {len(keys)}")
    if not 0 < len(chain_id) <= MAX_CHAIN_ID_LENGTH:
        raise ValueError(f"chain id must be 1 to {MAX_CHAIN_ID_LENGTH} characters")
    pending = PendingState(MemoryState(), timestamp_ms=timestamp_ms)
    for address in keys:
        account = pending.account(address)
        pending.set_account(address, replace(account, roles=account.roles | Role.VALIDATOR))
    issuer_count = 0
    for address in issuers:
        account = pending.account(address)
        issuer_count += Role.ISSUER not in account.roles
        pending.set_account(address, replace(account, roles=account.roles | Role.ISSUER))
    if issuer_count:
        pending.set_entry(ISSUER_COUNT_KEY, codec.encode(issuer_count))
    for asset in assets:
        problem = asset_id_problem(asset.terms.asset)
        if problem is not None or pending.asset(asset.terms.asset) is not None:
            raise ValueError(problem or f"genesis declares asset {asset.terms.asset} twice")
        if any(amount <= 0 for _, amount in asset.allocations):
            raise ValueError(f"genesis allocations of {asset.terms.asset} must be positive")
        if sum(amount for _, amount in asset.allocations) > (asset.terms.cap or MAX_SUPPLY):
            raise ValueError(f"genesis allocations of {asset.terms.asset} exceed its cap or {MAX_SUPPLY}")
        if asset.terms.expiry_ms and asset.terms.expiry_ms <= timestamp_ms:
            raise ValueError(f"asset {asset.terms.asset} expires before the genesis time")
        issue(pending, asset.terms, asset.allocations)
        if asset.terms.restricted:
            for address, _ in asset.allocations:
                pending.set_flag(approval_key(asset.terms.asset, address), True)
    pending.validators = records
    changes = pending.finish()
    header = Header(
        chain_id=chain_id,
        height=0,
        parent_hash=document_hash,
        timestamp_ms=timestamp_ms,
        proposer=bytes(PUBLIC_KEY_SIZE),
        transaction_root=transaction_root(()),
        state_root=changes.state_root,
        next_validators_hash=validators_hash(records),
    )
    return Block(header, ()), changes


def _genesis_validators(validators: Sequence[ValidatorRecord | bytes]) -> ValidatorSet:
    records: list[ValidatorRecord] = []
    for index, validator in enumerate(validators):
        if isinstance(validator, ValidatorRecord):
            records.append(validator)
        else:
            records.append(ValidatorRecord(validator, f"validator-{index}", ""))
    return tuple(records)
