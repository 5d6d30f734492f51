"""The mempool: signed transactions waiting for a proposer to put them in a block.

Admission runs the cheap rules first and the signature last, so junk costs this
node little; a transaction that passes is remembered in the ``SignatureCache``,
so the block that later carries it is not verified again. Transactions wait per
sender, keyed by nonce. ``select`` hands the proposer each sender's ready run of
nonces, taking senders in turn so that one busy account cannot crowd out the
rest. Everything is bounded: the pool's count and bytes, and how far ahead of its
committed nonce a sender may reach.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from mura.chain.errors import (
    DuplicateTransaction,
    Invalid,
    MempoolFull,
    NonceAlreadyPending,
    NonceTooHigh,
    NonceTooLow,
    PendingSpendExceedsBalance,
    TooManyPending,
)
from mura.chain.keys import SignatureCache
from mura.chain.state import (
    ChainRules,
    StateReader,
    validate_amount,
    validate_chain_id,
    validate_issuer,
    validate_kind,
    validate_signature,
)
from mura.chain.transaction import Burn, Mint, Transaction, Transfer

DEFAULT_MAX_TRANSACTIONS = 50_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_NONCE_GAP = 64
DEFAULT_MAX_PER_SENDER = 1_000

#: One sender's pending transactions by nonce.
_SenderQueue = dict[int, Transaction]


@dataclass(frozen=True, slots=True)
class MempoolStatus:
    """How full the pool is and what its limits are, as the RPC reports it."""

    #: Transactions pending.
    transactions: int
    #: Total size of their encodings.
    bytes: int
    #: Accounts with at least one pending transaction.
    senders: int
    #: Most transactions the pool holds.
    max_transactions: int
    #: Most encoded bytes the pool holds.
    max_bytes: int
    #: Furthest a nonce may reach beyond its sender's next nonce (committed and pending).
    max_nonce_gap: int
    #: Most transactions pending from one sender.
    max_per_sender: int


class Mempool:
    """Transactions that passed admission and wait to be committed.

    Each transaction is indexed by hash and by (sender, nonce); at most one is
    pending per sender and nonce, since without fees there is nothing to
    justify a replacement. Senders keep the order in which they arrived.
    """

    def __init__(
        self,
        *,
        rules: ChainRules,
        signatures: SignatureCache,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_nonce_gap: int = DEFAULT_MAX_NONCE_GAP,
        max_per_sender: int = DEFAULT_MAX_PER_SENDER,
    ) -> None:
        if max_transactions < 1 or max_bytes < 1 or max_nonce_gap < 0 or max_per_sender < 1:
            raise ValueError("mempool limits must be positive (the nonce gap may be zero)")
        self._rules = rules
        self._signatures = signatures
        self._max_transactions = max_transactions
        self._max_bytes = max_bytes
        self._max_nonce_gap = max_nonce_gap
        self._max_per_sender = max_per_sender
        # Per sender, a nonce up to which every nonce from the committed one is pending:
        # where the search for the sender's next nonce resumes.
        self._run_end: dict[bytes, int] = {}
        #: What each sender's pending transfers and burns take from its balance.
        self._pending_spend: dict[bytes, int] = {}
        self._by_hash: dict[bytes, Transaction] = {}
        # Insertion order is arrival order, which ``select`` takes turns in.
        self._by_sender: dict[bytes, _SenderQueue] = {}
        self._size_bytes = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, transaction_hash: object) -> bool:
        return transaction_hash in self._by_hash

    @property
    def size_bytes(self) -> int:
        """Total size of the pending transactions' encodings."""
        return self._size_bytes

    def get(self, transaction_hash: bytes) -> Transaction | None:
        """The pending transaction with this hash, if any."""
        return self._by_hash.get(transaction_hash)

    def pending_for(self, sender: bytes) -> list[Transaction]:
        """``sender``'s pending transactions in nonce order (gaps included)."""
        queue = self._by_sender.get(sender, {})
        return [queue[nonce] for nonce in sorted(queue)]

    def status(self) -> MempoolStatus:
        """A snapshot of the pool's fill and limits."""
        return MempoolStatus(
            transactions=len(self._by_hash),
            bytes=self._size_bytes,
            senders=len(self._by_sender),
            max_transactions=self._max_transactions,
            max_bytes=self._max_bytes,
            max_nonce_gap=self._max_nonce_gap,
            max_per_sender=self._max_per_sender,
        )

    # --- admission ----------------------------------------------------------

    def add(self, transaction: Transaction, state: StateReader) -> None:
        """Admit ``transaction`` against the committed ``state``, or raise why not.

        The rules run cheapest first and the signature last, so a refused
        transaction seldom costs a verification. A refusal leaves the pool as it was.
        """
        self.check(transaction, state)
        validate_signature(transaction, self._signatures)
        self._insert(transaction)

    def check(self, transaction: Transaction, state: StateReader) -> None:
        """Every admission rule but the signature, which a caller may verify off the
        event loop in between (``add`` then finds it in the cache)."""
        self._validate_not_pending(transaction)
        validate_chain_id(transaction, self._rules)
        validate_kind(transaction)
        validate_amount(cast(Transfer | Mint | Burn, transaction.body).amount)
        self._validate_nonce_window(transaction, state)
        self._validate_nonce_free(transaction)
        self._validate_affordable(transaction, state)
        self._validate_room(transaction)

    def check_batch(self, transactions: Iterable[Transaction], state: StateReader) -> tuple[list[Transaction], list[Invalid]]:
        """``check`` each of a batch as if those that passed before it were pending: a
        run of consecutive nonces passes whole, however far past ``max_nonce_gap`` it
        reaches (the window bounds how far one transaction may park ahead of its sender's
        next nonce, not how long a run may be), while the batch together still must be
        affordable and fit the pool. Nothing is admitted. Returns what passed, in batch
        order, and why each of the rest did not."""
        passed: list[Transaction] = []
        refused: list[Invalid] = []
        try:
            for transaction in transactions:
                try:
                    self.check(transaction, state)
                except Invalid as error:
                    refused.append(error)
                    continue
                self._insert(transaction)
                passed.append(transaction)
        finally:
            for transaction in passed:
                self._discard(transaction)
                # Its run end may have moved over the batch's nonces.
                self._run_end.pop(transaction.sender, None)
        return passed, refused

    def _validate_not_pending(self, transaction: Transaction) -> None:
        """A transaction is admitted once."""
        if transaction.hash in self._by_hash:
            raise DuplicateTransaction(f"transaction {transaction.hash.hex()} is already pending")

    def _validate_nonce_window(self, transaction: Transaction, state: StateReader) -> None:
        """A nonce is not yet used, and at most ``max_nonce_gap`` beyond the sender's next
        nonce counting its pending transactions; a sender has at most ``max_per_sender``
        pending.

        A treasury paying a thousand residents may queue a thousand consecutive
        nonces; what the window bounds is how far ahead of them it may park.
        """
        committed = state.load_account(transaction.sender).nonce
        if transaction.nonce < committed:
            raise NonceTooLow(
                f"nonce {transaction.nonce} was already used; the next is {committed}",
                expected=committed,
                got=transaction.nonce,
            )
        expected = self._next_nonce(transaction.sender, committed)
        if transaction.nonce - expected > self._max_nonce_gap:
            raise NonceTooHigh(
                f"nonce {transaction.nonce} is more than {self._max_nonce_gap} beyond the next nonce {expected}",
                expected=expected,
                got=transaction.nonce,
                max_gap=self._max_nonce_gap,
            )
        pending = len(self._by_sender.get(transaction.sender, ()))
        if pending >= self._max_per_sender:
            raise TooManyPending(
                f"this sender already has {pending} transactions pending, the limit is {self._max_per_sender}",
                pending=pending,
                limit=self._max_per_sender,
            )

    def _next_nonce(self, sender: bytes, committed: int) -> int:
        """The first nonce from ``committed`` on that is not pending. Remembered only for a
        sender with pending transactions: checking a transaction that is then refused
        leaves nothing behind."""
        queue = self._by_sender.get(sender)
        if not queue:
            return committed
        end = max(self._run_end.get(sender, committed), committed)
        while end in queue:
            end += 1
        self._run_end[sender] = end
        return end

    def _validate_nonce_free(self, transaction: Transaction) -> None:
        """No other transaction from the sender with the same nonce is pending."""
        if transaction.nonce in self._by_sender.get(transaction.sender, {}):
            raise NonceAlreadyPending(
                f"another transaction with nonce {transaction.nonce} from this sender is pending",
                nonce=transaction.nonce,
            )

    def _validate_affordable(self, transaction: Transaction, state: StateReader) -> None:
        """Only issuers mint or burn, and a sender's pending transfers and burns
        together spend at most its committed balance.

        Without this rule, keys holding nothing could park transactions that no
        block will ever take until the pool is full.
        """
        account = state.load_account(transaction.sender)
        if isinstance(transaction.body, (Mint, Burn)):
            validate_issuer(account)
        spend = _spend(transaction) + self._pending_spend.get(transaction.sender, 0)
        if spend > account.balance:
            raise PendingSpendExceedsBalance(
                f"pending transactions would spend {spend}, the committed balance is {account.balance}",
                balance=account.balance,
                pending_spend=spend,
            )

    def _validate_room(self, transaction: Transaction) -> None:
        """The pool stays within ``max_transactions`` and ``max_bytes``."""
        size = len(transaction.encoded)
        if len(self._by_hash) >= self._max_transactions or self._size_bytes + size > self._max_bytes:
            raise MempoolFull(
                f"mempool holds {len(self._by_hash)} transactions in {self._size_bytes} bytes; the limits are "
                f"{self._max_transactions} transactions and {self._max_bytes} bytes",
                transactions=len(self._by_hash),
                bytes=self._size_bytes,
            )

    def _insert(self, transaction: Transaction) -> None:
        self._by_hash[transaction.hash] = transaction
        self._by_sender.setdefault(transaction.sender, {})[transaction.nonce] = transaction
        self._size_bytes += len(transaction.encoded)
        self._pending_spend[transaction.sender] = self._pending_spend.get(transaction.sender, 0) + _spend(transaction)

    # --- proposing ----------------------------------------------------------

    def select(self, state: StateReader, *, max_transactions: int, max_bytes: int) -> list[Transaction]:
        """The transactions to propose next on top of ``state``, in block order.

        From each sender only the run of consecutive nonces starting at its
        committed nonce is ready: a missing nonce stops that sender. Senders take
        turns in arrival order, one transaction per turn, so a busy sender gets
        no more than its share while others wait. A transaction that would push
        the total past ``max_bytes`` ends its sender's run; the others go on
        until ``max_transactions`` are chosen. The work is linear in the number
        of senders plus the number chosen. The pool is not changed.
        """
        chosen: list[Transaction] = []
        size = 0
        turns = deque(self._ready_runs(state))
        while turns and len(chosen) < max_transactions:
            queue, nonce = turns.popleft()
            transaction = queue[nonce]
            if size + len(transaction.encoded) > max_bytes:
                continue  # the sender's later nonces need this one first
            chosen.append(transaction)
            size += len(transaction.encoded)
            if nonce + 1 in queue:
                turns.append((queue, nonce + 1))
        return chosen

    def ready_runs(self, state: StateReader, *, max_run: int) -> Iterator[list[Transaction]]:
        """Each sender's run of consecutive pending nonces from its committed nonce (the
        transactions a block could take next), at most ``max_run`` long, in arrival order."""
        for queue, nonce in self._ready_runs(state):
            run: list[Transaction] = []
            while nonce in queue and len(run) < max_run:
                run.append(queue[nonce])
                nonce += 1
            yield run

    def _ready_runs(self, state: StateReader) -> Iterator[tuple[_SenderQueue, int]]:
        """Each sender whose committed nonce is pending, with that nonce, in arrival order."""
        for sender, queue in self._by_sender.items():
            nonce = state.load_account(sender).nonce
            if nonce in queue:
                yield queue, nonce

    # --- after a commit -----------------------------------------------------

    def remove_committed(self, transactions: Iterable[Transaction], state: StateReader) -> None:
        """Forget the transactions of a final block (and their verified signatures), and
        what they made stale.

        ``state`` is the state after the block. For every sender the block
        touched, a pending transaction whose nonce is now below the sender's
        nonce can never be applied (the block used that nonce, perhaps for a
        different transaction) and is dropped; the rest stay.
        """
        senders: set[bytes] = set()
        final = list(transactions)
        # The transaction index refuses these from now on; their signatures need no memory.
        self._signatures.forget(transaction.hash for transaction in final)
        for transaction in final:
            senders.add(transaction.sender)
            pending = self._by_hash.get(transaction.hash)
            if pending is not None:
                self._discard(pending)
        for sender in senders:
            self._drop_stale(sender, state.load_account(sender).nonce)

    def discard(self, transactions: Iterable[Transaction]) -> None:
        """Forget transactions a proposer found can never be applied."""
        for transaction in transactions:
            pending = self._by_hash.get(transaction.hash)
            if pending is not None:
                self._discard(pending)
                # A hole may now break the sender's run of pending nonces.
                self._run_end.pop(transaction.sender, None)

    def _drop_stale(self, sender: bytes, next_nonce: int) -> None:
        queue = self._by_sender.get(sender, {})
        for transaction in [pending for nonce, pending in queue.items() if nonce < next_nonce]:
            self._discard(transaction)

    def _discard(self, transaction: Transaction) -> None:
        del self._by_hash[transaction.hash]
        queue = self._by_sender[transaction.sender]
        del queue[transaction.nonce]
        self._size_bytes -= len(transaction.encoded)
        self._pending_spend[transaction.sender] -= _spend(transaction)
        if not queue:
            del self._by_sender[transaction.sender]
            del self._pending_spend[transaction.sender]
            self._run_end.pop(transaction.sender, None)


def _spend(transaction: Transaction) -> int:
    """What a pending transaction takes from its sender's balance."""
    body = transaction.body
    return body.amount if isinstance(body, (Transfer, Burn)) else 0
