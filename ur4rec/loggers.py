"""A W&B logger that runs offline unless an API key is configured."""

from __future__ import annotations

import netrc
import os
from typing import Literal

from lightning.pytorch.loggers import WandbLogger


def wandb_key_configured() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` holds credentials for api.wandb.ai."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class UR4RecWandbLogger(WandbLogger):
    """``WandbLogger`` whose ``offline`` defaults to "no key configured" (runs are synced later with ``wandb sync``).

    ``log_model`` (upload ModelCheckpoint's best checkpoint as a ``model`` artifact at the end of fit) is
    dropped when offline, where Lightning refuses it.
    """

    def __init__(self, project: str = "ur4rec", save_dir: str = "logs", offline: bool | None = None,
                 log_model: bool | Literal["all"] = False, **kwargs):
        offline = not wandb_key_configured() if offline is None else offline
        super().__init__(project=project, save_dir=save_dir, offline=offline,
                         log_model=False if offline else log_model, **kwargs)
