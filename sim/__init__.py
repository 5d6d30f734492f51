"""The deterministic simulator: PBFT replicas over a seeded virtual network and clock.

One seed drives everything (delays, drops, duplicates, partitions, crashes,
byzantine behaviour), so a failing seed replays exactly. ``campaign`` runs many
seeds and checks agreement, validity, liveness and determinism after each.
"""
