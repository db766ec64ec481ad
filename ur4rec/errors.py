"""Expected failures that the command line reports as one line (exit code 2) instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot work; the message names the config key (``model.sasrec.hidden_size``)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupted, or from another catalog."""


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"<key>: <message>"`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: {message}")
