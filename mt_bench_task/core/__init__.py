"""The task core: records, files, the bench, FastChat's judge prompts, the judge's spec and
scoring. Imports nothing from the outer layers (tests/test_layers.py)."""
