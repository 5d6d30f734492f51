"""The checks several kinds of transaction share: amounts, funds, assets, who may act.

Each states one rule in its docstring and raises a typed ``Invalid`` when it is broken.
"""

from __future__ import annotations

from mura.chain.assets import MAX_MEMO_BYTES, AssetTerms, asset_id_problem
from mura.chain.bonds import is_chain_account
from mura.chain.errors import (
    AccountFrozen,
    AssetExists,
    ChainAccountRecipient,
    HolderNotApproved,
    InsufficientBalance,
    InvalidAssetId,
    MemoNotPrintable,
    MemoTooLong,
    NonPositiveAmount,
    NotAnIssuer,
    NotAssetIssuer,
    NotRegistrar,
    SupplyOverflow,
    UnknownAsset,
)
from mura.chain.pending import MAX_SUPPLY, PendingState, Role


def validate_amount(amount: int) -> None:
    """Amounts are positive whole smallest units, at most the largest supply."""
    if amount <= 0:
        raise NonPositiveAmount(f"amount must be positive, got {amount}", amount=amount)
    if amount > MAX_SUPPLY:
        raise SupplyOverflow(f"amount {amount} exceeds the largest possible supply {MAX_SUPPLY}", amount=amount)


def validate_funds(pending: PendingState, address: bytes, asset: str, amount: int) -> None:
    """An account spends at most its balance of the asset."""
    balance = pending.balance(address, asset)
    if balance < amount:
        raise InsufficientBalance(
            f"balance of {balance} {asset} does not cover amount {amount}", asset=asset, balance=balance, amount=amount
        )


def validate_asset(pending: PendingState, asset: str) -> AssetTerms:
    """A transaction names a valid asset id of an asset that has been issued."""
    problem = asset_id_problem(asset)
    if problem is not None:
        raise InvalidAssetId(problem, asset=asset)
    terms = pending.asset(asset)
    if terms is None:
        raise UnknownAsset(f"no asset {asset!r} has been issued", asset=asset)
    return terms


def validate_asset_issuer(terms: AssetTerms, sender: bytes) -> None:
    """Only an asset's issuer mints or burns it."""
    if sender != terms.issuer:
        raise NotAssetIssuer(f"only the issuer of {terms.asset} may mint or burn it", asset=terms.asset)


def validate_registrar(terms: AssetTerms, sender: bytes) -> None:
    """Only an asset's registrar approves and revokes holders and freezes and unfreezes accounts."""
    if sender != terms.registrar:
        raise NotRegistrar(f"only the registrar of {terms.asset} may do this", asset=terms.asset)


def validate_not_frozen(pending: PendingState, asset: str, address: bytes, role: str) -> None:
    """A frozen account neither sends nor receives the asset it is frozen in."""
    if pending.frozen(asset, address):
        raise AccountFrozen(f"the {role} is frozen in {asset}", asset=asset, account=address.hex(), party=role)


def validate_approved(pending: PendingState, terms: AssetTerms, address: bytes, role: str) -> None:
    """A restricted asset moves only to and from its issuer and the holders its registrar approved."""
    if terms.restricted and not pending.approved(terms, address):
        raise HolderNotApproved(
            f"{terms.asset} is restricted and the {role} is not an approved holder",
            asset=terms.asset,
            account=address.hex(),
            party=role,
        )


def validate_memo(memo: str) -> None:
    """A memo is at most 256 bytes in UTF-8, of printable text (spaces allowed; no line
    breaks, terminal escapes or invisible formatting characters)."""
    size = len(memo.encode())
    if size > MAX_MEMO_BYTES:
        raise MemoTooLong(f"memo is {size} bytes, the limit is {MAX_MEMO_BYTES}", bytes=size, limit=MAX_MEMO_BYTES)
    if not memo.isprintable():
        position = next(index for index, character in enumerate(memo) if not character.isprintable())
        raise MemoNotPrintable(
            f"memo holds the unprintable character {memo[position]!r} at {position}", position=position
        )


def expired(pending: PendingState, terms: AssetTerms) -> bool:
    """Whether the asset has expired: the block's timestamp has reached its expiry time (the
    automatic lapse may still be on its way to it)."""
    return pending.asset_state(terms.asset).expired or 0 < terms.expiry_ms <= pending.timestamp_ms


def validate_not_chain_account(address: bytes, role: str) -> None:
    """Nobody sends to a chain account (an escrow): only the chain moves money in and out of them."""
    if is_chain_account(address):
        raise ChainAccountRecipient(
            f"the {role} is a chain account, which receives only from the chain itself", account=address.hex()
        )


def validate_new_asset(pending: PendingState, issuer: bytes, asset: str, what: str) -> None:
    """An account with the issuer role issues ``what`` (an asset, a bond) under a new, valid id."""
    if Role.ISSUER not in pending.account(issuer).roles:
        raise NotAnIssuer(f"only an account with the issuer role may issue {what}")
    problem = asset_id_problem(asset)
    if problem is not None:
        raise InvalidAssetId(problem, asset=asset)
    if pending.asset(asset) is not None:
        raise AssetExists(f"asset {asset} already exists", asset=asset)
