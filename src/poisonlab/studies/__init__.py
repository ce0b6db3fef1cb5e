"""Studies: one run, sweeps, targeted flips, attack budgets and detection studies, resumable on disk."""

DEFAULT_PERCENTS = (0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90, 100)
BUDGET_METRICS = ("source-accuracy", "target-accuracy", "overall-accuracy")
VAL_MODES = ("split", "test")
PRESET_NAMES = ("original",)  # studies.presets.PRESETS, without importing it
