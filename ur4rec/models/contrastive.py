"""Memory-bank contrastive loss: InfoNCE between SASRec user states and preference-text vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MemoryBankContrastive(nn.Module):
    """Aligns each user's SASRec state with their own preference-text vector.

    Both are projected to ``dim`` and L2-normalized; the positive is the user's own text key, the
    negatives are the other keys in the batch plus a FIFO queue of ``queue_size`` keys from earlier
    batches (detached, so the queue carries no gradient). Queue entries of the same user are masked
    out, so a user's own text is never a negative. The queue is a buffer and is checkpointed.
    """

    def __init__(self, state_dim: int, text_dim: int, dim: int = 64, queue_size: int = 1024,
                 temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature
        self.state_projection = nn.Linear(state_dim, dim)
        self.text_projection = nn.Linear(text_dim, dim)
        self.register_buffer("queue", torch.zeros(queue_size, dim))
        self.register_buffer("queue_users", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def forward(self, state: torch.Tensor, user_text: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """state: (B, Ds), user_text: (B, Dt), users: (B,) distinct user ids -> scalar InfoNCE loss.

        Afterwards (in training) the batch's text keys join the queue."""
        query = F.normalize(self.state_projection(state), dim=-1)  # (B, H)
        keys = F.normalize(self.text_projection(user_text), dim=-1)  # (B, H)
        bank = self.queue.clone()  # (Q, H): a copy, since the queue is updated below
        empty = torch.arange(bank.shape[0], device=bank.device) >= self.queue_filled  # (Q,) slots not yet filled
        excluded = (users[:, None] == self.queue_users[None, :]) | empty  # (B, Q): own keys and empty slots
        logits = torch.cat([query @ keys.T, (query @ bank.T).masked_fill(excluded, float("-inf"))], dim=1)
        logits = logits / self.temperature  # (B, B + Q)
        loss = F.cross_entropy(logits, torch.arange(state.shape[0], device=state.device))
        if self.training:
            self._enqueue(keys.detach(), users)
        return loss

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor, users: torch.Tensor) -> None:
        size = self.queue.shape[0]
        keys, users = keys[-size:], users[-size:]
        positions = (self.queue_pointer + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[positions] = keys
        self.queue_users[positions] = users
        self.queue_pointer.copy_((self.queue_pointer + keys.shape[0]) % size)
        self.queue_filled.copy_((self.queue_filled + keys.shape[0]).clamp(max=size))
