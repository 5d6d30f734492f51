"""Every rejection of untrusted input is a typed exception under ``Invalid``.

Each class names the rule it enforces (``rule``) and carries the facts that
explain the refusal (``details``), so an RPC answer or a log line can say
exactly what was wrong.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Invalid(Exception):
    """Root of every rejection: the input broke a rule and was refused."""

    rule: ClassVar[str] = "invalid"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DecodeError(Invalid):
    """Bytes that are not the canonical encoding of a valid value."""

    rule = "malformed"


class InvalidAddress(Invalid):
    """A text address with the wrong prefix, characters, length or checksum."""

    rule = "invalid_address"


class InvalidKeyFile(Invalid):
    """A key file that is missing, unreadable or not an Ed25519 key."""

    rule = "invalid_key_file"


class InvalidGenesis(Invalid):
    """A genesis file with one or more problems, each named by its field path."""

    rule = "invalid_genesis"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid genesis: " + "; ".join(problems), problems=problems)
        self.problems = problems


# --- transactions ---------------------------------------------------------


class InvalidTransaction(Invalid):
    """A transaction that may not be applied to the current state."""

    rule = "invalid_transaction"


class BadSignature(InvalidTransaction):
    """The signature does not verify against the sender's key."""

    rule = "bad_signature"


class WrongChainId(InvalidTransaction):
    """The transaction was signed for another network."""

    rule = "wrong_chain_id"


class NonceTooLow(InvalidTransaction):
    """The nonce was already used: a replay or a duplicate."""

    rule = "nonce_too_low"


class NonceTooHigh(InvalidTransaction):
    """The nonce skips ahead of the sender's next nonce."""

    rule = "nonce_too_high"


class InsufficientBalance(InvalidTransaction):
    """The sender's balance does not cover the amount."""

    rule = "insufficient_balance"


class NotAnIssuer(InvalidTransaction):
    """Only accounts with the issuer role may issue assets."""

    rule = "not_an_issuer"


class UnknownAsset(InvalidTransaction):
    """No asset with this id has been issued."""

    rule = "unknown_asset"


class AssetExists(InvalidTransaction):
    """An asset with this id already exists."""

    rule = "asset_exists"


class InvalidAssetId(InvalidTransaction):
    """An asset id that is not 1 to 32 uppercase letters, digits and single hyphens, starting with a letter."""

    rule = "invalid_asset_id"


class InvalidAssetTerms(InvalidTransaction):
    """An asset's terms are out of bounds or contradict each other; ``field`` names which."""

    rule = "invalid_asset_terms"


class NotAssetIssuer(InvalidTransaction):
    """Only an asset's issuer may mint or burn it."""

    rule = "not_asset_issuer"


class AssetNotReissuable(InvalidTransaction):
    """The asset's supply was fixed at issue: nothing more may be minted."""

    rule = "asset_not_reissuable"


class SupplyCapExceeded(InvalidTransaction):
    """Minting would take the asset's supply past the cap its terms set."""

    rule = "supply_cap_exceeded"


class NotRegistrar(InvalidTransaction):
    """Only an asset's registrar approves holders and freezes accounts."""

    rule = "not_registrar"


class HolderNotApproved(InvalidTransaction):
    """A restricted asset moves only between its issuer and holders its registrar approved."""

    rule = "holder_not_approved"


class AccountFrozen(InvalidTransaction):
    """The registrar froze this account in this asset: it can neither send nor receive it."""

    rule = "account_frozen"


class AssetExpired(InvalidTransaction):
    """The asset has expired: it moves only back to its issuer, and is minted no more."""

    rule = "asset_expired"


class MemoNotPrintable(InvalidTransaction):
    """A transfer's memo holds a control character (a line break, a terminal escape) or an
    invisible formatting character: what a wallet shows of it could mislead."""

    rule = "memo_not_printable"


class MemoTooLong(InvalidTransaction):
    """A transfer's memo is longer than 256 bytes in UTF-8."""

    rule = "memo_too_long"


class NotABond(InvalidTransaction):
    """The asset named is not a bond."""

    rule = "not_a_bond"


class InvalidBondTerms(InvalidTransaction):
    """A bond's terms are out of bounds; ``field`` names the first that is."""

    rule = "invalid_bond_terms"


class ChainAccountRecipient(InvalidTransaction):
    """Chain accounts (escrows) receive only from the chain itself."""

    rule = "chain_account_recipient"


class PaymentInProgress(InvalidTransaction):
    """A coupon or the redemption of the bond is being paid: its units do not move until it is done."""

    rule = "payment_in_progress"


class BondRedeemed(InvalidTransaction):
    """The bond has been redeemed."""

    rule = "bond_redeemed"


class OfferingExists(InvalidTransaction):
    """The bond already has an offering."""

    rule = "offering_exists"


class NoOffering(InvalidTransaction):
    """The bond has no offering."""

    rule = "no_offering"


class InvalidOfferingTerms(InvalidTransaction):
    """An offering's terms are out of bounds; ``field`` names the first that is."""

    rule = "invalid_offering_terms"


class OfferingNotOpen(InvalidTransaction):
    """The offering takes no subscriptions or cancellations at this time (before its start, from its end)."""

    rule = "offering_not_open"


class SubscriptionOutOfBounds(InvalidTransaction):
    """A subscription asks for fewer units than the minimum or more than the maximum."""

    rule = "subscription_out_of_bounds"


class AlreadySubscribed(InvalidTransaction):
    """The account already subscribed: cancel first to change the order."""

    rule = "already_subscribed"


class NotSubscribed(InvalidTransaction):
    """The account has no subscription to cancel."""

    rule = "not_subscribed"


class OfferingFull(InvalidTransaction):
    """The offering holds the most subscriptions one allotment takes."""

    rule = "offering_full"


class BadPayingConsent(InvalidTransaction):
    """A bond names a paying account other than its issuer that did not sign its consent to the terms."""

    rule = "bad_paying_consent"


class NotTradeParty(InvalidTransaction):
    """A trade is sent by its seller or its buyer, two different accounts."""

    rule = "not_trade_party"


class BadCounterpartySignature(InvalidTransaction):
    """The counterparty's signature does not verify over the trade's terms."""

    rule = "bad_counterparty_signature"


class TradeExpired(InvalidTransaction):
    """The trade's deadline has passed (or is further ahead than a trade may be)."""

    rule = "trade_expired"


class TradeSettled(InvalidTransaction):
    """This trade has already settled."""

    rule = "trade_settled"


class NotProceedsAccount(InvalidTransaction):
    """Only the bond's proceeds account spends its proceeds."""

    rule = "not_proceeds_account"


class ProceedsExceeded(InvalidTransaction):
    """The spending exceeds what the offering raised less what was spent."""

    rule = "proceeds_exceeded"


class InvalidPurpose(InvalidTransaction):
    """A purpose is 1 to 64 printable characters."""

    rule = "invalid_purpose"


class NonPositiveAmount(InvalidTransaction):
    """Amounts must be at least one smallest unit."""

    rule = "non_positive_amount"


class SupplyOverflow(InvalidTransaction):
    """Minting would push an asset's supply past the largest encodable amount."""

    rule = "supply_overflow"


class NonceUsed(InvalidTransaction):
    """Another transaction from the sender with this nonce became final: this one never can."""

    rule = "nonce_used"


# --- governance -------------------------------------------------------------


class NotAValidator(InvalidTransaction):
    """Only a validator of the current set (the set deciding the block) proposes or approves."""

    rule = "not_a_validator"


class UnknownProposal(InvalidTransaction):
    """No proposal has this id."""

    rule = "unknown_proposal"


class ProposalExpired(InvalidTransaction):
    """The proposal's lifetime ran out before a quorum approved it."""

    rule = "proposal_expired"


class ProposalApproved(InvalidTransaction):
    """The proposal already has its quorum: it is decided."""

    rule = "proposal_approved"


class DuplicateApproval(InvalidTransaction):
    """The validator has already approved this proposal (a proposer approves by proposing)."""

    rule = "duplicate_approval"


class TooManyProposals(InvalidTransaction):
    """The proposer already has as many proposals open as one validator may."""

    rule = "too_many_proposals"


class InvalidValidatorInfo(InvalidTransaction):
    """A proposed validator's name, peer address or key is malformed; ``field`` names which."""

    rule = "invalid_validator_info"


class ValidatorCount(InvalidTransaction):
    """The change would leave fewer than one validator or more than the most a set holds."""

    rule = "validator_count"


class AlreadyValidator(InvalidTransaction):
    """The key to add (or to rotate to) is already a validator's."""

    rule = "already_validator"


class NotValidator(InvalidTransaction):
    """The key to remove (or to rotate from) is not in the validator set."""

    rule = "not_validator"


class ValidatorNameTaken(InvalidTransaction):
    """Another validator of the set already has this name."""

    rule = "validator_name_taken"


class AlreadyIssuer(InvalidTransaction):
    """The account to grant the issuer role to already holds it."""

    rule = "already_issuer"


class NotIssuerAccount(InvalidTransaction):
    """The account whose issuer role is to be revoked does not hold it."""

    rule = "not_issuer_account"


class LastIssuer(InvalidTransaction):
    """Revoking the role from the last account holding it would leave no issuer."""

    rule = "last_issuer"


class UnknownKind(DecodeError, InvalidTransaction):
    """A transaction kind this node does not know."""

    rule = "unknown_kind"


# --- blocks ---------------------------------------------------------------


class InvalidBlock(Invalid):
    """A block that may not be appended to the chain."""

    rule = "invalid_block"


class BlockTooLarge(InvalidBlock):
    """The block exceeds the byte or transaction-count limit."""

    rule = "block_too_large"


class WrongHeight(InvalidBlock):
    """The block's height is not the parent's height plus one."""

    rule = "wrong_height"


class WrongParent(InvalidBlock):
    """The block does not extend the current head."""

    rule = "wrong_parent"


class WrongBlockChainId(InvalidBlock):
    """The block header names another network."""

    rule = "block_wrong_chain_id"


class TimestampBeforeParent(InvalidBlock):
    """Block timestamps never go backwards."""

    rule = "timestamp_before_parent"


class UnknownProposer(InvalidBlock):
    """The proposer is not a validator."""

    rule = "unknown_proposer"


class NextValidatorsMismatch(InvalidBlock):
    """The header's ``next_validators_hash`` is not the hash of the set the block leads to."""

    rule = "next_validators_mismatch"


class TransactionRootMismatch(DecodeError, InvalidBlock):
    """The header's transaction root is not the root of the block's transactions: the
    body is not the one the header (and so the block hash) commits to. Refused wherever
    a block is decoded, checked or stored."""

    rule = "transaction_root_mismatch"


class DuplicateTransactionInBlock(InvalidBlock):
    """The same transaction appears twice in one block."""

    rule = "duplicate_transaction_in_block"


class InvalidBlockTransaction(InvalidBlock):
    """A transaction inside the block is invalid; ``cause`` says which rule."""

    rule = "invalid_block_transaction"

    def __init__(self, index: int, cause: InvalidTransaction) -> None:
        super().__init__(
            f"transaction {index} is invalid: {cause.message}",
            index=index,
            cause=cause.rule,
            cause_details=cause.details,
        )
        self.index = index
        self.cause = cause


class StateRootMismatch(InvalidBlock):
    """The post-state this node computed differs from the header's state root."""

    rule = "state_root_mismatch"


class InvalidCertificate(Invalid):
    """A commit certificate that does not prove the block final."""

    rule = "invalid_certificate"


# --- mempool --------------------------------------------------------------


class MempoolRejection(Invalid):
    """The mempool refused a transaction that may be valid in itself."""

    rule = "mempool_rejected"


class MempoolFull(MempoolRejection):
    """The mempool is at its count or byte limit."""

    rule = "mempool_full"


class DuplicateTransaction(MempoolRejection):
    """The transaction is already pending (a final one is refused as ``NonceTooLow``)."""

    rule = "duplicate_transaction"


class PendingSpendExceedsBalance(MempoolRejection):
    """The sender's pending transactions would spend more of an asset than its committed balance of it."""

    rule = "pending_spend_exceeds_balance"


class TooManyPending(MempoolRejection):
    """The sender already has as many transactions pending as one sender may."""

    rule = "too_many_pending"


class Replaced(MempoolRejection):
    """A transaction with the same sender and nonce took this one's place in the mempool;
    it is refused again while that replacement (or a later one) is pending."""

    rule = "replaced"


class ReplacementTooSoon(MempoolRejection):
    """The sender replaced a pending transaction too recently to replace another yet."""

    rule = "replacement_too_soon"


class Expired(MempoolRejection):
    """The transaction stayed pending longer than the mempool keeps one."""

    rule = "expired"
