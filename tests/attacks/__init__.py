"""Attacks on real node processes, and what each costs the honest nodes.

``python -m mura.tests.attacks.campaign`` (or ``make attacks``) runs them; see
``campaign`` for the command line, ``harness`` for what is measured, and
``peer`` for the one module that speaks the peer protocol.
"""
