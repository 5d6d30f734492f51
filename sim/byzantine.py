"""Byzantine validators for the simulator.

- ``EquivocatorNode`` runs the honest replica but lies about what it sends: as
  primary it proposes one block to half the validators and another to the
  rest (and votes for both); as the primary of a view being changed to, it
  sends a NEW-VIEW that ignores the prepared block its view changes force,
  even for heights it already saw final; it withholds its commits from some
  and never helps a lagging replica catch up.
- ``SwapperNode`` runs the honest replica but hands out genuine headers with
  forged bodies (a reordered, shortened or lengthened list of transactions):
  in its proposals to half the validators, in NEW-VIEW re-proposals, in final
  blocks it pushes the moment it commits them, and in catch-up answers. A
  reordering of independent transfers even leaves the state root unchanged,
  so only the transaction root tells the forgery apart.
- ``GarbageNode`` runs no replica; it sends malformed bytes, badly signed
  messages, validly signed messages for far-future views and heights, and
  proposals on the honest head, in views it leads, whose transactions are
  validly signed but break the rules in odd ways (an asset id of 64 four-byte
  characters, a memo of 2,000 characters, absurd asset terms).
- A silent validator is a node that never boots; twins are two honest nodes
  with one key (see ``simulation.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate, Header, UncheckedBlock, assembled_block, transaction_root
from mura.chain.keys import HASH_SIZE, SIGNATURE_SIZE, SignatureCache, SigningKey
from mura.chain.transaction import ApproveHolder, Body, IssueAsset, Mint, Transfer, sign_transaction
from mura.consensus.messages import (
    BlockRequest,
    Commit,
    FinalBlock,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    encode_final_block,
    encode_message,
)
from mura.consensus.quorum import ValidatorSet
from mura.sim.ledger import CHAIN_ID, Genesis, SimLedger, TransactionSigner
from mura.sim.nodes import Destination, ForkingLedger, SimNode
from mura.sim.workload import CLIENT_KEYS, NAC


class EquivocatorNode(SimNode):
    """Honest code underneath, lies on the way out."""

    rng: random.Random

    def make_ledger(self, genesis: Genesis, signer: TransactionSigner, signatures: SignatureCache) -> SimLedger:
        return ForkingLedger(genesis, signer=signer, signatures=signatures)

    def set_up_attack(self, rng: random.Random) -> None:
        self.rng = rng
        self.validators = ValidatorSet.of(self.ledger.genesis.validators)
        self.collected: dict[tuple[int, int], dict[int, ViewChange]] = {}
        self.attacked: set[tuple[int, int]] = set()

    def route(self, message: Message, to: int | None, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        if isinstance(message, FinalBlock) or self._contradicts_attack(message):
            return ()
        if to is None and isinstance(message, (PrePrepare, NewView)):
            return self._split_proposal(message, now_ms)
        if to is None and isinstance(message, Commit):
            return ((self._some_others(), message),)
        return super().route(message, to, now_ms)

    def observe(self, message: Message, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        """Collect view changes for views this validator leads; with a quorum (counting a
        view change of its own) send a NEW-VIEW with a fresh block, ignoring what they force."""
        if not isinstance(message, ViewChange) or self.validators.primary(message.view) != self.validator:
            return ()
        key = (message.view, message.height)
        collected = self.collected.setdefault(key, {})
        collected[message.sender] = message.without_block()
        if key in self.attacked or len(collected) + 1 < self.validators.quorum:
            return ()
        self.attacked.add(key)
        own = ViewChange.sign(self.key, self.validator, CHAIN_ID, message.view, message.height, None, None)
        changes = tuple(sorted({**collected, self.validator: own}.values(), key=lambda change: change.sender))
        block = self.fork_block(message.height, now_ms)
        if block is None:
            return ()
        proposal = PrePrepare.sign(self.key, self.validator, CHAIN_ID, message.view, block)
        forged = NewView(message.view, message.height, changes, proposal)
        return ((None, forged), *self._votes_for(None, message.view, block))

    def _contradicts_attack(self, message: Message) -> bool:
        """Once it forged a NEW-VIEW for a view, it says nothing else there (it helps no one
        catch up either: FinalBlocks are withheld)."""
        if isinstance(message, (PrePrepare, Prepare, Commit, NewView)):
            return (message.view, message.height) in self.attacked
        return False

    def fork_block(self, height: int, now_ms: int) -> Block | None:
        """A valid block for ``height`` built on the state below it, different from any
        honest proposal made at another time."""
        assert isinstance(self.ledger, ForkingLedger)
        snapshot = self.ledger.snapshots.get(height)
        if snapshot is None:
            return None
        state, parent = snapshot
        timestamp = self.clock(now_ms) + self.rng.randrange(1, 1_000)
        return self.ledger.build_on(state, parent, proposer=self.key.public_key, timestamp_ms=timestamp).block

    def _split_proposal(self, message: PrePrepare | NewView, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        proposal = message if isinstance(message, PrePrepare) else message.pre_prepare
        block = self.fork_block(proposal.height, now_ms)
        if block is None or block.hash == proposal.block_hash:
            return ((None, message),)
        other = PrePrepare.sign(self.key, self.validator, CHAIN_ID, proposal.view, block)
        if isinstance(message, NewView):
            other_message: Message = NewView(message.view, message.height, message.view_changes, other)
        else:
            other_message = other
        first, second = self._halves()
        return ((first, message), (second, other_message), *self._votes_for(second, proposal.view, block))

    def _votes_for(self, to: Destination, view: int, block: Block) -> tuple[tuple[Destination, Message], ...]:
        prepare = Prepare.sign(self.key, self.validator, CHAIN_ID, view, block.height, block.hash)
        commit = Commit.sign(self.key, self.validator, CHAIN_ID, view, block.height, block.hash)
        return ((to, prepare), (to, commit))

    def _others(self) -> list[int]:
        return [node for nodes in self.instances.values() for node in nodes if node != self.node_id]

    def _halves(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        others = self._others()
        self.rng.shuffle(others)
        middle = len(others) // 2
        return tuple(sorted(others[:middle])), tuple(sorted(others[middle:]))

    def _some_others(self) -> tuple[int, ...]:
        others = self._others()
        return tuple(sorted(self.rng.sample(others, self.rng.randint(1, len(others)))))


class SwapperNode(SimNode):
    """Honest code underneath; every block it hands out has a forged body."""

    rng: random.Random

    def set_up_attack(self, rng: random.Random) -> None:
        self.rng = rng
        self._signer = TransactionSigner()

    def forged(self, block: Block) -> UncheckedBlock:
        """``block``'s header over other transactions: two swapped, the only one dropped,
        or one added to an empty block."""
        transactions = list(block.transactions)
        if len(transactions) >= 2:
            first, second = self.rng.sample(range(len(transactions)), 2)
            transactions[first], transactions[second] = transactions[second], transactions[first]
        elif transactions:
            transactions = []
        else:
            transactions = [self._signer.sign(1, 0, Transfer(NAC, CLIENT_KEYS[0].public_key, 1))]
        data = codec.encode([block.header.to_fields(), [transaction.encoded for transaction in transactions]])
        return UncheckedBlock(block.header, data)

    def route(self, message: Message, to: int | None, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        if to is None and isinstance(message, PrePrepare) and isinstance(message.block, Block):
            first, second = self._halves()
            swapped = PrePrepare(message.view, self.forged(message.block), message.sender, message.signature)
            return ((first, message), (second, swapped))
        if to is None and isinstance(message, NewView) and isinstance(message.pre_prepare.block, Block):
            proposal = message.pre_prepare
            swapped = PrePrepare(
                proposal.view, self.forged(message.pre_prepare.block), proposal.sender, proposal.signature
            )
            return ((None, NewView(message.view, message.height, message.view_changes, swapped)),)
        return super().route(message, to, now_ms)

    def serve(self, to: int, start: int, now_ms: int) -> list[tuple[Destination, bytes]]:
        answers: list[tuple[Destination, bytes]] = []
        for height in range(start, min(self.ledger.final_height(), start + 15) + 1):
            final = self.ledger.load_final_block(height)
            assert final is not None and isinstance(final.block, Block)
            answers.append(
                (self.nodes_of(to), encode_final_block(self.forged(final.block).encode(), final.certificate.encode()))
            )
        return answers

    def after_commit(self, block: Block, certificate: CommitCertificate) -> list[tuple[Destination, bytes]]:
        """Push the block just made final, forged, before the others have it."""
        return [(None, encode_final_block(self.forged(block).encode(), certificate.encode()))]

    def _halves(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        others = [node for nodes in self.instances.values() for node in nodes if node != self.node_id]
        self.rng.shuffle(others)
        middle = len(others) // 2
        return tuple(sorted(others[:middle])), tuple(sorted(others[middle:]))


class GarbageNode:
    """Sends one piece of garbage per tick; runs no replica."""

    def __init__(self, *, node_id: int, validator: int, key: SigningKey, genesis: Genesis, rng: random.Random) -> None:
        self.node_id = node_id
        self.validator = validator
        self.key = key
        self.genesis = genesis
        self.rng = rng
        self.sent = 0
        self._makers: list[Callable[[int], bytes]] = [
            self._random_bytes,
            self._truncated,
            self._bad_signature,
            self._impersonation,
            self._far_future_vote,
            self._far_future_view_change,
            self._far_future_height,
            self._bogus_final_block,
            self._thin_new_view,
            self._odd_request,
            self._poisoned_proposal,
        ]
        self._head: Header = genesis.block.header

    def garbage(self, height: int, head: Header) -> bytes:
        """One piece of garbage aimed at ``height`` (the honest nodes' current height, on
        top of ``head``)."""
        self.sent += 1
        self._head = head
        return self.rng.choice(self._makers)(height)

    def _poisoned_proposal(self, height: int) -> bytes:
        """A proposal on the honest head, in one of the first views this validator leads,
        carrying a validly signed transaction that breaks the rules oddly: the replicas must
        refuse the block by its rule, never fail on it."""
        n = len(self.genesis.validators)
        view = self.validator + n * self.rng.randrange(0, 4)
        key = CLIENT_KEYS[self.rng.randrange(len(CLIENT_KEYS))]
        recipient = CLIENT_KEYS[0].public_key
        body: Body = self.rng.choice(
            (
                Transfer("\U0001f600" * 64, recipient, 1),
                Mint("\U0001f600" * 64, recipient, 1),
                ApproveHolder("n\u0131c" * 21, recipient),
                Transfer(NAC, recipient, 1, "\u00e9" * 2_000),
                IssueAsset("\U0001f600" * 64, "\u202e" * 64, 2**64 - 1, 2**64 - 1, False, 2**64 - 1, b"", "x" * 64, 1),
            )
        )
        transaction = sign_transaction(key, chain_id=CHAIN_ID, nonce=self.rng.randrange(0, 3), body=body)
        head = self._head
        header = Header(
            CHAIN_ID,
            height,
            head.hash,
            head.timestamp_ms + 1,
            self.key.public_key,
            transaction_root((transaction,)),
            bytes(HASH_SIZE),
            bytes(HASH_SIZE),
        )
        block = assembled_block(header, (transaction,))
        return encode_message(PrePrepare.sign(self.key, self.validator, CHAIN_ID, view, block))

    def _random_bytes(self, height: int) -> bytes:
        return self.rng.randbytes(self.rng.randrange(0, 300))

    def _truncated(self, height: int) -> bytes:
        data = encode_message(self._prepare(height, 0))
        return data[: self.rng.randrange(0, len(data))]

    def _bad_signature(self, height: int) -> bytes:
        vote = Commit(0, height, self.rng.randbytes(HASH_SIZE), self.validator, self.rng.randbytes(SIGNATURE_SIZE))
        return encode_message(vote)

    def _impersonation(self, height: int) -> bytes:
        victim = self.rng.randrange(len(self.genesis.validators))
        vote = self._prepare(height, 0)
        return encode_message(Prepare(vote.view, vote.height, vote.block_hash, victim, vote.signature))

    def _far_future_vote(self, height: int) -> bytes:
        return encode_message(self._prepare(height, self.rng.randrange(1_000, 2**62)))

    def _far_future_view_change(self, height: int) -> bytes:
        view = self.rng.randrange(1_000, 2**62)
        return encode_message(ViewChange.sign(self.key, self.validator, CHAIN_ID, view, height, None, None))

    def _far_future_height(self, height: int) -> bytes:
        far = height + self.rng.randrange(10, 10**9)
        view = self.rng.randrange(0, 50) * len(self.genesis.validators) + self.validator
        return encode_message(PrePrepare.sign(self.key, self.validator, CHAIN_ID, view, self._empty_block(far)))

    def _bogus_final_block(self, height: int) -> bytes:
        block = self._empty_block(height)
        signatures = tuple((index, self.rng.randbytes(SIGNATURE_SIZE)) for index in range(len(self.genesis.validators)))
        return encode_message(FinalBlock(block, CommitCertificate(height, 0, block.hash, signatures)))

    def _thin_new_view(self, height: int) -> bytes:
        view = self.validator + len(self.genesis.validators) * self.rng.randrange(1, 5)
        proposal = PrePrepare.sign(self.key, self.validator, CHAIN_ID, view, self._empty_block(height))
        own = ViewChange.sign(self.key, self.validator, CHAIN_ID, view, height, None, None)
        return encode_message(NewView(view, height, (own,), proposal))

    def _odd_request(self, height: int) -> bytes:
        requester = self.rng.choice((self.validator, 200, 255))
        return encode_message(BlockRequest(self.rng.choice((0, 1, height, 2**63)), requester))

    def _empty_block(self, height: int) -> Block:
        """A well-formed block that extends nothing this network has."""
        zeros = bytes(HASH_SIZE)
        header = Header(CHAIN_ID, height, self.rng.randbytes(HASH_SIZE), 0, self.key.public_key, zeros, zeros, zeros)
        return Block(header, ())

    def _prepare(self, height: int, view: int) -> Prepare:
        block_hash = self.rng.randbytes(HASH_SIZE)
        return Prepare.sign(self.key, self.validator, CHAIN_ID, view, height, block_hash)
