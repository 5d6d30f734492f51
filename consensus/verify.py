"""Stateless checks of consensus messages against the validator set.

Each ``check_*`` states the rules a message must meet to be considered at all
and raises a typed ``InvalidMessage`` when one is broken. Whether the message
is *timely* (its view and height against the replica's own) is the replica's
business, not this module's.

Signatures are verified once per node: a verified (signer, payload, signature)
triple is remembered in a bounded ``SignatureCache``, so the PREPAREs inside a
prepared certificate, or a view change repeated in a NEW-VIEW, cost a hash each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from mura.chain.block import verify_certificate
from mura.chain.keys import SignatureCache, sha256, verify_signature
from mura.consensus.errors import (
    BadMessageSignature,
    DigestMismatch,
    InvalidMessage,
    InvalidNewView,
    InvalidPreparedCertificate,
    NewViewChoiceMismatch,
    NotPrimary,
    UnknownValidator,
)
from mura.consensus.messages import (
    FinalBlock,
    NewView,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    Vote,
    prepare_payload,
    proposal_payload,
)
from mura.consensus.quorum import ValidatorSet


def highest_prepared(view_changes: Iterable[ViewChange]) -> PreparedCertificate | None:
    """The prepared certificate of the highest view among ``view_changes``: the block a
    NEW-VIEW built from them must re-propose (ties, which need a broken quorum, go to
    the larger hash so every replica picks alike)."""
    certificates = [change.prepared for change in view_changes if change.prepared is not None]
    if not certificates:
        return None
    return max(certificates, key=lambda certificate: (certificate.view, certificate.block_hash))


class MessageVerifier:
    """Checks signatures, senders and internal consistency of consensus messages."""

    def __init__(self, validators: ValidatorSet, chain_id: str, *, cache: SignatureCache | None = None) -> None:
        self.validators = validators
        self.chain_id = chain_id
        #: Distinct signers that make a prepared certificate or a NEW-VIEW.
        self.quorum = validators.quorum
        self._cache = cache if cache is not None else SignatureCache(capacity=20_000)

    def check_signature(self, sender: int, payload: bytes, signature: bytes) -> None:
        """The sender is a validator and ``signature`` is its signature of ``payload``."""
        if not self.validators.contains(sender):
            raise UnknownValidator(f"sender {sender} is not a validator", sender=sender)
        # Keyed by the public key, not the index: an index names another validator at a
        # height whose set differs, and the cache is shared by the verifiers of every set.
        public_key = self.validators.keys[sender]
        key = sha256(public_key + signature + payload)
        if key in self._cache:
            return
        if not verify_signature(public_key, signature, payload):
            raise BadMessageSignature(f"signature of validator {sender} does not verify", sender=sender)
        self._cache.add(key)

    def signature_ok(self, sender: int, signature: bytes, payload: bytes) -> bool:
        """Whether ``signature`` is validator ``sender``'s over ``payload`` (remembered as
        ``check_signature`` does: a certificate's COMMITs are mostly known already)."""
        try:
            self.check_signature(sender, payload, signature)
        except InvalidMessage:
            return False
        return True

    def check_certificate(self, final: FinalBlock) -> None:
        """Raise ``InvalidCertificate`` unless ``final``'s certificate proves its block final."""
        verify_certificate(
            final.certificate,
            chain_id=self.chain_id,
            height=final.height,
            block_hash=final.block.hash,
            validators=self.validators.keys,
            signature_ok=self.signature_ok,
        )

    def check_pre_prepare(self, message: PrePrepare) -> None:
        """A proposal is signed by the primary of its view."""
        if message.sender != self.validators.primary(message.view):
            raise NotPrimary(
                f"validator {message.sender} is not the primary of view {message.view}",
                sender=message.sender,
                view=message.view,
            )
        self.check_signature(message.sender, message.signing_payload(self.chain_id), message.signature)

    def check_vote(self, message: Vote) -> None:
        """A PREPARE or COMMIT is signed by its sender."""
        self.check_signature(message.sender, message.signing_payload(self.chain_id), message.signature)

    def check_prepared_certificate(self, certificate: PreparedCertificate) -> None:
        """A prepared certificate holds the primary's proposal signature and PREPARE
        signatures from a quorum of distinct validators, all for its block."""
        indexes = [index for index, _ in certificate.signatures]
        if any(later <= earlier for earlier, later in itertools.pairwise(indexes)):
            raise InvalidPreparedCertificate("prepare signers must be strictly increasing (no duplicates)")
        if len(indexes) < self.quorum:
            raise InvalidPreparedCertificate(f"{len(indexes)} prepares, a quorum is {self.quorum}")
        view, height, block_hash = certificate.view, certificate.height, certificate.block_hash
        primary = self.validators.primary(view)
        self.check_signature(
            primary, proposal_payload(self.chain_id, view, height, block_hash), certificate.proposal_signature
        )
        payload = prepare_payload(self.chain_id, view, height, block_hash)
        for index, signature in certificate.signatures:
            self.check_signature(index, payload, signature)

    def check_view_change(self, message: ViewChange) -> None:
        """A view change is signed; its prepared certificate, if any, is valid, is for
        its height and an earlier view, and matches the block carried with it."""
        self.check_signature(message.sender, message.signing_payload(self.chain_id), message.signature)
        prepared = message.prepared
        if prepared is None:
            if message.prepared_block is not None:
                raise DigestMismatch("a view change carries a block but no prepared certificate")
            return
        if prepared.height != message.height or prepared.view >= message.view:
            raise InvalidPreparedCertificate(
                f"certificate for height {prepared.height} view {prepared.view} in a view change "
                f"for height {message.height} view {message.view}"
            )
        if message.prepared_block is not None and message.prepared_block.hash != prepared.block_hash:
            raise DigestMismatch("the prepared block is not the one the certificate names")
        self.check_prepared_certificate(prepared)

    def check_new_view(self, message: NewView) -> None:
        """A NEW-VIEW holds a quorum of valid view changes for its view and height from
        distinct validators, and its primary's proposal for that view and height; the
        proposal is the block those view changes force."""
        proposal = message.pre_prepare
        if proposal.view != message.view or proposal.height != message.height:
            raise InvalidNewView("the proposal is not for the NEW-VIEW's view and height")
        self.check_pre_prepare(proposal)
        self.check_view_change_quorum(message.view, message.height, message.view_changes)
        self.check_new_view_choice(message)

    def check_view_change_quorum(self, view: int, height: int, view_changes: Sequence[ViewChange]) -> None:
        senders = [change.sender for change in view_changes]
        if any(later <= earlier for earlier, later in itertools.pairwise(senders)):
            raise InvalidNewView("view change senders must be strictly increasing (no duplicates)")
        if len(senders) < self.quorum:
            raise InvalidNewView(f"{len(senders)} view changes, a quorum is {self.quorum}")
        for change in view_changes:
            if change.view != view or change.height != height:
                raise InvalidNewView(f"a view change for view {change.view} height {change.height} is included")
            self.check_view_change(change)

    def check_new_view_choice(self, message: NewView) -> None:
        """The proposal re-proposes the highest prepared block among the view changes."""
        forced = highest_prepared(message.view_changes)
        if forced is not None and forced.block_hash != message.pre_prepare.block_hash:
            raise NewViewChoiceMismatch(
                f"NEW-VIEW proposes {message.pre_prepare.block_hash.hex()[:16]}, its view changes force "
                f"{forced.block_hash.hex()[:16]} prepared in view {forced.view}"
            )
