"""Attacks on training data: random, biased, targeted and informed label flips, backdoor triggers, and real human
label noise (CIFAR-10N)."""

KINDS = ("random", "biased")
POISONS = (*KINDS, "targeted", "backdoor")
STRATEGIES = ("random", "first", "last", "margin", "confident")  # which items a random or biased poisoning takes (informed)
BIASED_RULES = ("readme", "code")  # biased poisoning as the original README words it, or as its code does
