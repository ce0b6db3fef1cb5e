"""Attacks on training data: random, biased, targeted and informed label flips, backdoor triggers, and real human
label noise (CIFAR-10N)."""

KINDS = ("random", "biased")
POISONS = (*KINDS, "targeted", "backdoor")
STRATEGIES = ("random", "first", "margin", "confident")  # which items a random or biased poisoning takes (informed)
