"""Slot-equivariant actor-critic policies for the slot observation and per-slot Box actions.

The observation is ``[G global features | K slots x F features]`` and a per-slot Box action holds one (or more)
values per slot plus a few global values (the budget). A plain MLP must learn the same per-request rule K times,
once per slot position; :class:`SlotActorCriticPolicy` shares one small network across slots instead:

* every slot is embedded by the same MLP from its features and the global features: ``h_i = phi(s_i, g)``
  (empty slots are masked out);
* a context vector pools the slots: ``c = psi(g, mean_i h_i)``; the critic reads ``c``;
* the action mean of slot ``i``'s values is the same linear head of ``(h_i, c)``; global values come from ``c``.

The action head starts near zero (orthogonal init with gain 0.01), so a freshly initialised policy's mean action is
(almost) the zero action, which in the -v1 residual mode is the base scheduler itself. The layout of the action
vector comes from the environment's decoder (``decoder.layout``: ``("slot", "global")`` for residual,
``("slot", "global", "slot")`` for scores with chunk caps).
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn


def _mlp(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())


class SlotExtractor(nn.Module):
    """Shared per-slot embedding, masked mean pooling, a context vector (actor) and a value trunk (critic).

    Args:
        n_global: Global features ``G``.
        slots: Slots ``K``.
        n_slot: Features per slot ``F`` (the first one is the "present" flag).
        hidden: Width of the slot embedding and of the context.
    """

    def __init__(self, n_global: int, slots: int, n_slot: int, hidden: int = 64) -> None:
        super().__init__()
        self.g, self.k, self.f, self.h = n_global, slots, n_slot, hidden
        self.slot_net = nn.Sequential(
            nn.Linear(n_slot + n_global, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.ctx_net = nn.Sequential(
            nn.Linear(n_global + hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.value_net = nn.Sequential(
            nn.Linear(n_global + hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.latent_dim_pi = slots * hidden + hidden
        self.latent_dim_vf = hidden

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = x[:, : self.g]
        s = x[:, self.g :].reshape(-1, self.k, self.f)
        mask = s[..., :1]
        h = self.slot_net(torch.cat((s, g.unsqueeze(1).expand(-1, self.k, -1)), dim=-1)) * mask
        pooled = h.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return h, torch.cat((g, pooled), dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent_pi, latent_vf)``."""
        h, gp = self._embed(x)
        return torch.cat((h.flatten(1), self.ctx_net(gp)), dim=-1), self.value_net(gp)

    def forward_actor(self, x: torch.Tensor) -> torch.Tensor:
        """``latent_pi``: the slot embeddings then the context."""
        h, gp = self._embed(x)
        return torch.cat((h.flatten(1), self.ctx_net(gp)), dim=-1)

    def forward_critic(self, x: torch.Tensor) -> torch.Tensor:
        """``latent_vf``."""
        return self.value_net(self._embed(x)[1])


class SlotHead(nn.Module):
    """Action means: per-slot values from ``(h_i, c)`` with shared weights, global values from ``c``.

    Args:
        slots: Slots ``K``.
        hidden: Width of the slot embedding and context.
        layout: Segments of the action vector, each ``"slot"`` (K values, one per slot) or ``"global"`` (one value).
    """

    def __init__(self, slots: int, hidden: int, layout: tuple[str, ...]) -> None:
        super().__init__()
        self.k, self.h, self.layout = slots, hidden, layout
        self.n_slot = layout.count("slot")
        self.n_global = layout.count("global")
        self.slot_out = nn.Linear(2 * hidden, self.n_slot)
        self.global_out = nn.Linear(hidden, self.n_global) if self.n_global else None

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """The action means in the layout's order."""
        h = latent[:, : self.k * self.h].reshape(-1, self.k, self.h)
        c = latent[:, self.k * self.h :]
        per_slot = self.slot_out(torch.cat((h, c.unsqueeze(1).expand(-1, self.k, -1)), dim=-1))
        glob = self.global_out(c) if self.global_out is not None else None
        parts, i_slot, i_glob = [], 0, 0
        for kind in self.layout:
            if kind == "slot":
                parts.append(per_slot[..., i_slot])
                i_slot += 1
            else:
                assert glob is not None
                parts.append(glob[:, i_glob : i_glob + 1])
                i_glob += 1
        return torch.cat(parts, dim=-1)


class SlotActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` with :class:`SlotExtractor` and :class:`SlotHead` (Box actions only).

    Extra keyword arguments (``policy_kwargs``): ``n_global``, ``slots``, ``n_slot``, ``layout``, ``hidden``.
    """

    def __init__(
        self,
        *args: Any,
        n_global: int = 12,
        slots: int = 32,
        n_slot: int = 15,
        layout: tuple[str, ...] = ("slot", "global"),
        hidden: int = 64,
        **kwargs: Any,
    ) -> None:
        self.slot_cfg = (n_global, slots, n_slot, tuple(layout), hidden)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        n_global, slots, n_slot, _, hidden = self.slot_cfg
        self.mlp_extractor = SlotExtractor(n_global, slots, n_slot, hidden)  # type: ignore[assignment]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        _, slots, _, layout, hidden = self.slot_cfg
        head = SlotHead(slots, hidden, layout)
        for module in (head.slot_out, head.global_out):
            if module is not None:
                nn.init.orthogonal_(module.weight, gain=0.01)
                nn.init.zeros_(module.bias)
        self.action_net = head
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
