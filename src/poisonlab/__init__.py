"""poisonlab: how much does poisoned training data hurt a model, and can we catch it?"""

__version__ = "0.1.0"
