"""The mempool: signed transactions waiting for a proposer to put them in a block.

Admission refuses what the next block could never include, by the chain's own
rules over the committed state and what is already pending: every rule of its
kind holds against the committed state, a sender's pending transfers and burns
of an asset spend at most its balance of it, and an asset's committed supply
plus every pending mint of it stays within its cap and ``MAX_SUPPLY``. The rules run cheapest first
and the signature last, so junk costs this node little; a transaction that
passes is remembered in the ``SignatureCache``, so the block that later carries
it is not verified again.

A transaction with the sender and nonce of a pending one replaces it if it
passes admission without it, at most once per ``replacement_interval`` per
sender. After each final block the pool drops what that block made
unincludable (``remove_committed``), a proposer drops what its block refused
(``drop_refused``), and ``expire`` drops what waited longer than
``expire_after``. Each drop is remembered with its reason (``DropRecord``) and
reported to ``on_drop``.

Transactions wait per sender, keyed by nonce. ``select`` hands the proposer
each sender's ready run of nonces, taking senders in turn so that one busy
account cannot crowd out the rest. Everything is bounded: the pool's count and
bytes, how far ahead of its committed nonce a sender may reach, and the drops
remembered. Times are monotonic seconds given by the caller.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from mura.chain.bond_rules import load_bond, load_offering
from mura.chain.drops import DEFAULT_MAX_REMEMBERED, Dropped, DropRecord
from mura.chain.errors import (
    DuplicateTransaction,
    Expired,
    InsufficientBalance,
    Invalid,
    InvalidTransaction,
    MempoolFull,
    NonceTooHigh,
    NonceTooLow,
    NonceUsed,
    PendingSpendExceedsBalance,
    Replaced,
    ReplacementTooSoon,
    SupplyCapExceeded,
    SupplyOverflow,
    TooManyPending,
)
from mura.chain.keys import SignatureCache
from mura.chain.state import (
    HANDLERS,
    MAX_SUPPLY,
    ChainRules,
    PendingState,
    StateReader,
    validate_chain_id,
    validate_kind,
    validate_signature,
)
from mura.chain.transaction import (
    Burn,
    Mint,
    OpenOffering,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transaction,
    Transfer,
)

DEFAULT_MAX_TRANSACTIONS = 50_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_NONCE_GAP = 64
DEFAULT_MAX_PER_SENDER = 1_000
#: Senders ``has_ready`` looks at before it answers yes.
DEFAULT_READY_SCAN = 1_000
#: Seconds a transaction may stay pending before it is dropped as expired.
DEFAULT_EXPIRE_AFTER = 600.0
#: Seconds between two replacements by one sender.
DEFAULT_REPLACEMENT_INTERVAL = 1.0
#: Most transactions one ``expire`` call drops: a burst admitted together expires over a few
#: calls rather than holding the event loop for a second (about 15 us each).
DEFAULT_EXPIRE_BATCH = 5_000
#: Seconds between two lines counting drops (the first is written at once).
DROP_SUMMARY_EVERY = 60.0
#: How many replacements deep a replaced transaction's successors are followed.
MAX_REPLACEMENT_CHAIN = 16

#: One sender's pending transactions by nonce.
_SenderQueue = dict[int, Transaction]
#: Told of the transactions each operation dropped, together.
OnDrop = Callable[[Sequence[Dropped]], None]


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
    pending per sender and nonce: another with the same sender and nonce
    replaces it. Senders keep the order in which they arrived.
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
        expire_after: float = DEFAULT_EXPIRE_AFTER,
        replacement_interval: float = DEFAULT_REPLACEMENT_INTERVAL,
        max_remembered_drops: int = DEFAULT_MAX_REMEMBERED,
        on_drop: OnDrop | None = None,
    ) -> None:
        if max_transactions < 1 or max_bytes < 1 or max_nonce_gap < 0 or max_per_sender < 1:
            raise ValueError("mempool limits must be positive (the nonce gap may be zero)")
        if expire_after < 0 or replacement_interval < 0:
            raise ValueError("expire_after and replacement_interval must not be negative")
        self._rules = rules
        self._signatures = signatures
        self._max_transactions = max_transactions
        self._max_bytes = max_bytes
        self._max_nonce_gap = max_nonce_gap
        self._max_per_sender = max_per_sender
        self._expire_after = expire_after
        self._replacement_interval = replacement_interval
        self._on_drop = on_drop
        self._drops = DropRecord(capacity=max_remembered_drops)
        self._drop_summary_at = -DROP_SUMMARY_EVERY
        # Per sender, a nonce up to which every nonce from the committed one is pending:
        # where the search for the sender's next nonce resumes.
        self._run_end: dict[bytes, int] = {}
        #: What each sender's pending transfers and burns take from its balance of each asset.
        self._pending_spend: dict[bytes, dict[str, int]] = {}
        #: What each pending transaction takes from its sender's balance, counted at admission.
        self._spends: dict[bytes, tuple[str, int]] = {}
        #: Each pending mint's asset and amount by hash, in arrival order, and their sum per asset.
        self._pending_mints: dict[bytes, tuple[str, int]] = {}
        self._pending_mint_total: dict[str, int] = {}
        self._by_hash: dict[bytes, Transaction] = {}
        # Insertion order is arrival order, which ``select`` takes turns in.
        self._by_sender: dict[bytes, _SenderQueue] = {}
        # When each pending transaction was admitted, oldest first: ``expire`` reads from the front.
        self._arrived: OrderedDict[bytes, float] = OrderedDict()
        # When each sender with pending transactions last replaced one.
        self._last_replacement: dict[bytes, float] = {}
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

    def dropped(self, transaction_hash: bytes) -> Dropped | None:
        """Why this pool dropped the transaction, if it did, and it is neither pending again
        nor final (and among the last ``max_remembered_drops`` drops)."""
        return self._drops.get(transaction_hash)

    def drop_summary(self, *, now: float) -> str | None:
        """One line counting the drops by rule since the last line, or None if there were none
        or the last line is less than ``DROP_SUMMARY_EVERY`` seconds old at ``now``: one key
        replacing once a second would otherwise be worth an INFO line a second on every node."""
        if now - self._drop_summary_at < DROP_SUMMARY_EVERY:
            return None
        summary = self._drops.take_summary()
        if summary is not None:
            self._drop_summary_at = now
        return summary

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

    def add(self, transaction: Transaction, state: StateReader, *, now: float, timestamp_ms: int = 0) -> None:
        """Admit ``transaction`` against the committed ``state`` at time ``now``, or raise why not.

        ``timestamp_ms`` is the wall-clock time the rules that depend on a block's
        timestamp are checked at (an offering's window, a trade's deadline, an expiry),
        as the next block will roughly carry it; 0 checks them as at the epoch.

        The rules run cheapest first and the signature last, so a refused
        transaction seldom costs a verification. A refusal leaves the pool as it
        was. A replaced transaction is dropped (rule ``replaced``).
        """
        replaced = self.check(transaction, state, now=now, timestamp_ms=timestamp_ms)
        validate_signature(transaction, self._signatures)
        dropped: list[Dropped] = []
        if replaced is not None:
            error = Replaced(f"replaced by transaction {transaction.hash.hex()} with the same sender and nonce")
            dropped.append(self._drop(replaced, error, replaced_by=transaction.hash, hole=False))
        self._insert(transaction, _spend(transaction, state))
        self._arrived[transaction.hash] = now
        self._drops.forget([transaction.hash])
        if replaced is not None:
            self._last_replacement[transaction.sender] = now
        self._report(dropped)

    def check(
        self, transaction: Transaction, state: StateReader, *, now: float, timestamp_ms: int = 0
    ) -> Transaction | None:
        """Every admission rule but the signature, which a caller may verify off the
        event loop in between (``add`` then finds it in the cache). Returns the pending
        transaction it would replace, if any: every rule is then applied as if that one
        were not pending."""
        self._validate_not_pending(transaction)
        self._validate_not_replaced(transaction)
        validate_chain_id(transaction, self._rules)
        validate_kind(transaction)
        # Every rule of the kind, against the committed state.
        HANDLERS[transaction.kind][0](PendingState(state, timestamp_ms=timestamp_ms), transaction)
        replaced = self._by_sender.get(transaction.sender, {}).get(transaction.nonce)
        self._validate_nonce_window(transaction, state, replacing=replaced is not None)
        if replaced is not None:
            self._validate_replacement_interval(transaction, now)
        self._validate_affordable(transaction, state, replaced)
        self._validate_supply(transaction, state, replaced)
        self._validate_room(transaction, replaced)
        return replaced

    def check_batch(
        self, transactions: Iterable[Transaction], state: StateReader, *, now: float, timestamp_ms: int = 0
    ) -> tuple[list[Transaction], list[Invalid]]:
        """``check`` each of a batch as if those that passed before it were pending: a
        run of consecutive nonces passes whole, however far past ``max_nonce_gap`` it
        reaches (the window bounds how far one transaction may park ahead of its sender's
        next nonce, not how long a run may be), while the batch together still must be
        affordable and fit the pool. A replacement passes on its own and is not counted
        for the rest (``add`` checks each again). Nothing is admitted. Returns what
        passed, in batch order, and why each of the rest did not."""
        passed: list[Transaction] = []
        refused: list[Invalid] = []
        inserted: list[Transaction] = []
        # Senders with a replacement already passed in this batch: ``add`` would refuse another
        # as too soon, so it is refused here, before the caller verifies its signature.
        replacing: set[bytes] = set()
        try:
            for transaction in transactions:
                try:
                    replaced = self.check(transaction, state, now=now, timestamp_ms=timestamp_ms)
                    if replaced is not None and self._replacement_interval:
                        if transaction.sender in replacing:
                            raise _replacement_too_soon(0.0, self._replacement_interval)
                        replacing.add(transaction.sender)
                except Invalid as error:
                    refused.append(error)
                    continue
                passed.append(transaction)
                if replaced is None:
                    self._insert(transaction, _spend(transaction, state))
                    inserted.append(transaction)
        finally:
            for transaction in inserted:
                self._discard(transaction)
                # Its run end may have moved over the batch's nonces.
                self._run_end.pop(transaction.sender, None)
        return passed, refused

    def _validate_not_pending(self, transaction: Transaction) -> None:
        """A transaction is admitted once."""
        if transaction.hash in self._by_hash:
            raise DuplicateTransaction(f"transaction {transaction.hash.hex()} is already pending")

    def _validate_not_replaced(self, transaction: Transaction) -> None:
        """A transaction this pool dropped as replaced stays out while its replacement (or
        a replacement of that) is pending, so that rebroadcasts of two versions of one
        nonce cannot flip the pool back and forth between them."""
        successor = self._pending_successor(transaction.hash)
        if successor is not None:
            raise Replaced(
                f"transaction {transaction.hash.hex()} was replaced by {successor.hex()}, which is pending",
                replaced_by=successor,
            )

    def _pending_successor(self, transaction_hash: bytes) -> bytes | None:
        dropped = self._drops.get(transaction_hash)
        for _ in range(MAX_REPLACEMENT_CHAIN):
            if dropped is None or dropped.replaced_by is None:
                return None
            if dropped.replaced_by in self._by_hash:
                return dropped.replaced_by
            dropped = self._drops.get(dropped.replaced_by)
        return None

    def _validate_nonce_window(self, transaction: Transaction, state: StateReader, *, replacing: bool) -> None:
        """A nonce is not yet used, and at most ``max_nonce_gap`` beyond the sender's next
        nonce counting its pending transactions; a sender has at most ``max_per_sender``
        pending. A replacement takes a pending nonce: it reaches no further and adds nothing.

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
        if replacing:
            return
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

    def _validate_replacement_interval(self, transaction: Transaction, now: float) -> None:
        """A sender replaces at most one pending transaction per ``replacement_interval``.

        A replacement costs every node a signature check and a gossip frame, yet
        never takes a place in a block; without this bound one key could make the
        network do that work without end.
        """
        last = self._last_replacement.get(transaction.sender)
        if last is not None and now - last < self._replacement_interval:
            raise _replacement_too_soon(now - last, self._replacement_interval)

    def _validate_affordable(self, transaction: Transaction, state: StateReader, replaced: Transaction | None) -> None:
        """A sender's pending transactions together spend at most its committed balance of
        each asset: transfers, burns, offerings (the units), subscriptions (their price),
        spending of proceeds, and its side of trades.

        Without this rule, keys holding nothing could park transactions that no
        block will ever take until the pool is full.
        """
        spent = _spend(transaction, state)
        if spent is None:
            return
        asset, amount = spent
        others = self._pending_spend.get(transaction.sender, {}).get(asset, 0)
        replaced_spend = self._spends.get(replaced.hash) if replaced is not None else None
        if replaced_spend is not None and replaced_spend[0] == asset:
            others -= replaced_spend[1]
        spend = amount + others
        balance = state.load_balance(transaction.sender, asset)
        if spend <= balance:
            return
        if others == 0:
            message = f"{transaction.kind} of {amount} exceeds the balance of {balance} {asset}"
        else:
            message = f"with other transactions pending, this would spend {spend} of a balance of {balance} {asset}"
        raise PendingSpendExceedsBalance(message, asset=asset, balance=balance, pending_spend=spend)

    def _validate_supply(self, transaction: Transaction, state: StateReader, replaced: Transaction | None) -> None:
        """A mint keeps the asset's committed supply plus every pending mint of it within its
        cap and ``MAX_SUPPLY``: otherwise the block that would carry it refuses it."""
        if not isinstance(transaction.body, Mint):
            return
        asset = transaction.body.asset
        pending = self._pending_mint_total.get(asset, 0)
        if replaced is not None and replaced.hash in self._pending_mints:
            replaced_asset, replaced_amount = self._pending_mints[replaced.hash]
            if replaced_asset == asset:
                pending -= replaced_amount
        error = _over_supply(asset, transaction.body.amount, state, pending)
        if error is not None:
            raise error

    def _validate_room(self, transaction: Transaction, replaced: Transaction | None) -> None:
        """The pool stays within ``max_transactions`` and ``max_bytes`` (a replacement frees its predecessor's room)."""
        count = len(self._by_hash) - (replaced is not None)
        size = self._size_bytes - (len(replaced.encoded) if replaced is not None else 0) + len(transaction.encoded)
        if count >= self._max_transactions or size > self._max_bytes:
            raise MempoolFull(
                f"mempool holds {len(self._by_hash)} transactions in {self._size_bytes} bytes; the limits are "
                f"{self._max_transactions} transactions and {self._max_bytes} bytes",
                transactions=len(self._by_hash),
                bytes=self._size_bytes,
            )

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

    def has_ready(self, state: StateReader, *, max_senders: int = DEFAULT_READY_SCAN) -> bool:
        """Whether a block on top of ``state`` could take a pending transaction now: some
        sender's committed nonce is pending. Transactions parked behind a missing nonce are
        not ready; they must not make an idle chain propose blocks that cannot take them.
        At most ``max_senders`` senders are looked at (a state read each): past them the
        answer is yes, so that many keys parking transactions cost a bounded scan."""
        for _, (sender, queue) in zip(range(max_senders), self._by_sender.items(), strict=False):
            if state.load_account(sender).nonce in queue:
                return True
        return len(self._by_sender) > max_senders

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

    def drop_refused(self, refused: Iterable[tuple[Transaction, InvalidTransaction]]) -> None:
        """Drop what a proposal left out because a chain rule refused it, with that rule,
        except a transaction refused only because an earlier nonce of its sender was
        (``nonce_too_high``): it waits for that nonce to be filled again, or expires."""
        dropped: list[Dropped] = []
        for transaction, error in refused:
            pending = self._by_hash.get(transaction.hash)
            if pending is not None and not isinstance(error, NonceTooHigh):
                dropped.append(self._drop(pending, error))
        self._report(dropped)

    # --- after a commit -----------------------------------------------------

    def remove_committed(self, transactions: Iterable[Transaction], state: StateReader) -> None:
        """Forget the transactions of a final block (and their verified signatures), and
        drop what the block made unincludable.

        ``state`` is the state after the block. The work is bounded by the block's
        size, plus the pending mints when the block minted and they no longer fit:
        a pending transaction with the sender and nonce of one of the block's, but
        another hash, is dropped (``nonce_used``); for each sender of the block whose
        pending transfers and burns of an asset now spend more than its balance of it,
        those that no longer fit in nonce order are dropped (``insufficient_balance``);
        and, in arrival order, each pending mint of an asset the block minted that no
        longer fits beside its supply and the earlier ones is dropped
        (``supply_cap_exceeded`` or ``supply_overflow``). Each is remembered and reported.
        """
        final = list(transactions)
        hashes = [transaction.hash for transaction in final]
        # The transaction index refuses these from now on; their signatures need no memory.
        self._signatures.forget(hashes)
        self._drops.forget(hashes)
        dropped: list[Dropped] = []
        for transaction in final:
            pending = self._by_hash.get(transaction.hash)
            if pending is not None:
                self._remove(pending, hole=False)
                continue
            other = self._by_sender.get(transaction.sender, {}).get(transaction.nonce)
            if other is not None:
                error = NonceUsed(
                    f"transaction {transaction.hash.hex()} with the same sender and nonce {transaction.nonce} "
                    "became final",
                    final_transaction=transaction.hash,
                )
                dropped.append(self._drop(other, error, hole=False))
        for sender in dict.fromkeys(transaction.sender for transaction in final):
            dropped += self._drop_overspent(sender, state)
        for asset in dict.fromkeys(
            transaction.body.asset for transaction in final if isinstance(transaction.body, Mint)
        ):
            dropped += self._drop_over_supply(asset, state)
        self._report(dropped)

    def _drop_overspent(self, sender: bytes, state: StateReader) -> list[Dropped]:
        """Keep ``sender``'s pending transactions within its balance of each asset, in nonce order.

        Only a block that took another version of one of its nonces (a replacement
        that lost a race) can have spent more than this pool counted.
        """
        spends = self._pending_spend.get(sender, {})
        balances = {asset: state.load_balance(sender, asset) for asset in spends}
        if all(spend <= balances[asset] for asset, spend in spends.items()):
            return []
        queue = self._by_sender[sender]
        dropped: list[Dropped] = []
        spent: dict[str, int] = {}
        for nonce in sorted(queue):
            transaction = queue[nonce]
            spend = self._spends.get(transaction.hash)
            if spend is None:
                continue
            asset, amount = spend
            before = spent.get(asset, 0)
            if before + amount <= balances[asset]:
                spent[asset] = before + amount
                continue
            error = InsufficientBalance(
                f"{transaction.kind} of {amount} exceeds the balance of {balances[asset]} {asset}"
                + (f" after the {before} this sender's earlier pending transactions spend" if before else ""),
                asset=asset,
                balance=balances[asset],
                amount=amount,
            )
            dropped.append(self._drop(transaction, error))
        return dropped

    def _drop_over_supply(self, asset: str, state: StateReader) -> list[Dropped]:
        """Keep ``asset``'s supply plus its pending mints within its cap and ``MAX_SUPPLY``, in
        arrival order. Only a block with a mint this pool never held can break that."""
        if _over_supply(asset, self._pending_mint_total.get(asset, 0), state, 0) is None:
            return []
        dropped: list[Dropped] = []
        pending = 0
        for transaction_hash, (mint_asset, amount) in list(self._pending_mints.items()):
            if mint_asset != asset:
                continue
            error = _over_supply(asset, amount, state, pending)
            if error is None:
                pending += amount
                continue
            dropped.append(self._drop(self._by_hash[transaction_hash], error))
        return dropped

    # --- expiry -------------------------------------------------------------

    def expire(self, now: float, *, limit: int = DEFAULT_EXPIRE_BATCH) -> None:
        """Drop the transactions admitted ``expire_after`` seconds or more before ``now``
        (none when ``expire_after`` is 0), oldest first, at most ``limit`` of them. The
        work is the number dropped."""
        if not self._expire_after:
            return
        dropped: list[Dropped] = []
        while self._arrived and len(dropped) < limit:
            transaction_hash, arrived = next(iter(self._arrived.items()))
            waited = now - arrived
            if waited < self._expire_after:
                break
            error = Expired(
                f"pending for {waited:.0f} s without being included; a transaction waits at most "
                f"{self._expire_after:g} s",
                pending_seconds=round(waited, 3),
            )
            dropped.append(self._drop(self._by_hash[transaction_hash], error))
        self._report(dropped)

    # --- bookkeeping --------------------------------------------------------

    def _drop(
        self, transaction: Transaction, error: Invalid, *, replaced_by: bytes | None = None, hole: bool = True
    ) -> Dropped:
        """Remove a pending transaction for the rule ``error`` broke and remember why. ``hole``:
        its nonce is not used, so the sender's run of pending nonces may now break there."""
        self._remove(transaction, hole=hole)
        self._signatures.forget([transaction.hash])
        dropped = Dropped(
            transaction.hash, transaction.sender, transaction.nonce, error.rule, error.message, replaced_by
        )
        self._drops.remember(dropped)
        return dropped

    def _report(self, dropped: list[Dropped]) -> None:
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)

    def _insert(self, transaction: Transaction, spend: tuple[str, int] | None) -> None:
        self._by_hash[transaction.hash] = transaction
        self._by_sender.setdefault(transaction.sender, {})[transaction.nonce] = transaction
        self._size_bytes += len(transaction.encoded)
        if spend is not None:
            self._spends[transaction.hash] = spend
            spends = self._pending_spend.setdefault(transaction.sender, {})
            spends[spend[0]] = spends.get(spend[0], 0) + spend[1]
        if isinstance(transaction.body, Mint):
            asset, amount = transaction.body.asset, transaction.body.amount
            self._pending_mints[transaction.hash] = (asset, amount)
            self._pending_mint_total[asset] = self._pending_mint_total.get(asset, 0) + amount

    def _remove(self, transaction: Transaction, *, hole: bool) -> None:
        """Take an admitted transaction out of the pool."""
        self._discard(transaction)
        del self._arrived[transaction.hash]
        if hole:
            self._run_end.pop(transaction.sender, None)

    def _discard(self, transaction: Transaction) -> None:
        """Undo ``_insert``."""
        del self._by_hash[transaction.hash]
        queue = self._by_sender[transaction.sender]
        del queue[transaction.nonce]
        self._size_bytes -= len(transaction.encoded)
        spend = self._spends.pop(transaction.hash, None)
        if spend is not None:
            spends = self._pending_spend[transaction.sender]
            spends[spend[0]] -= spend[1]
            if not spends[spend[0]]:
                del spends[spend[0]]
                if not spends:
                    del self._pending_spend[transaction.sender]
        mint = self._pending_mints.pop(transaction.hash, None)
        if mint is not None:
            self._pending_mint_total[mint[0]] -= mint[1]
            if not self._pending_mint_total[mint[0]]:
                del self._pending_mint_total[mint[0]]
        if not queue:
            del self._by_sender[transaction.sender]
            self._pending_spend.pop(transaction.sender, None)
            self._run_end.pop(transaction.sender, None)
            self._last_replacement.pop(transaction.sender, None)


def _replacement_too_soon(ago: float, interval: float) -> ReplacementTooSoon:
    """The refusal of a replacement ``ago`` seconds after the sender's last one."""
    return ReplacementTooSoon(
        f"this sender replaced a pending transaction {ago:.2f} s ago; a sender may replace one every {interval:g} s",
        retry_after_seconds=round(interval - ago, 3),
    )


def _over_supply(
    asset: str, amount: int, state: StateReader, pending: int
) -> SupplyOverflow | SupplyCapExceeded | None:
    """Why minting ``amount`` of ``asset`` beside ``pending`` in earlier pending mints would be
    refused by its cap or by ``MAX_SUPPLY``, or None."""
    supply = state.load_asset_state(asset).supply
    terms = state.load_asset(asset)
    cap = terms.cap if terms is not None and terms.cap else MAX_SUPPLY
    if supply + pending + amount <= cap:
        return None
    beside = f", with {pending} more in pending mints" if pending else ""
    message = f"minting {amount} would take the supply of {asset} ({supply}{beside}) past "
    if cap < MAX_SUPPLY:
        return SupplyCapExceeded(
            message + f"its cap {cap}", asset=asset, amount=amount, supply=supply, pending_mints=pending, cap=cap
        )
    return SupplyOverflow(message + str(MAX_SUPPLY), asset=asset, amount=amount, supply=supply, pending_mints=pending)


def _spend(transaction: Transaction, state: StateReader) -> tuple[str, int] | None:
    """What a pending transaction takes from its sender's balance: the asset and the amount.
    (A trade's counterparty's side is not counted: the block that carries it checks it.)"""
    body = transaction.body
    if isinstance(body, (Transfer, Burn)):
        return body.asset, body.amount
    if isinstance(body, OpenOffering):
        return body.bond, body.units
    terms = load_bond(state, body.bond) if isinstance(body, (Subscribe, SpendProceeds, SettleTrade)) else None
    if terms is None:
        return None
    if isinstance(body, Subscribe):
        offering = load_offering(state, body.bond)
        return None if offering is None else (terms.settlement, body.units * offering.price)
    if isinstance(body, SpendProceeds):
        return terms.settlement, body.amount
    if isinstance(body, SettleTrade):
        return (body.bond, body.units) if transaction.sender == body.seller else (terms.settlement, body.amount)
    return None
