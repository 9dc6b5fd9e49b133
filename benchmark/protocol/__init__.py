"""What a benchmark is scored on, as pure functions and data: pairs files and folds, the
verification protocols (LFW), image conditions, metrics and per-pair scores. The lowest layer of
``benchmark``: it imports nothing from ``run`` or ``report``."""
