"""Unit tests of consensus/: messages, quorums, votes, verification and replica rules."""
