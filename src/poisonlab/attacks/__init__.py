"""Attacks on training labels: random, biased and targeted flips, and real human label noise (CIFAR-10N)."""

KINDS = ("random", "biased")
POISONS = (*KINDS, "targeted")
