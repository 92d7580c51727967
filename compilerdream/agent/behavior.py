"""Actor-critic learned in imagination: λ-returns, percentile return normalisation, REINFORCE (REFERENCE §5.4)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from compilerdream.agent.networks import DistHead, Precision, mlp_options
from compilerdream.agent.rssm import State, flatten_time
from compilerdream.agent.world_model import WorldModel, optimizer_from_config


def lambda_return(reward: Tensor, value: Tensor, discount: Tensor, bootstrap: Tensor, lambda_: float) -> Tensor:
    """TD(λ) returns with DreamerV2 indexing (DreamerV2 §2 eq. 4, REFERENCE §5.4).

    reward, value, discount: (B, T), where reward[:, t] is the reward for entering state t; bootstrap: (B,) = v_T.
    G_t = r_t + d_t·((1-λ)·v_{t+1} + λ·G_{t+1}) with v_T = G_T = bootstrap. Returns G: (B, T).
    """
    assert reward.shape == value.shape == discount.shape and bootstrap.shape == reward.shape[:1], (
        reward.shape,
        value.shape,
        discount.shape,
        bootstrap.shape,
    )
    next_value = torch.cat([value[:, 1:], bootstrap[:, None]], 1)  # (B, T)
    returns, last = [], bootstrap
    for t in reversed(range(reward.shape[1])):
        last = reward[:, t] + discount[:, t] * ((1.0 - lambda_) * next_value[:, t] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], 1)


class PercentileNormalizer(nn.Module):
    """EMA of the `perclo`/`perchi` quantiles of the returns (DreamerV3 §2 "return normalisation", REFERENCE §5.4).

    Buffers start at 0 and are updated as `ema = momentum·ema + (1-momentum)·quantile`; the returned scale is
    `max(1, hi - lo)` so that small returns are not blown up, and the offset is `lo`.
    """

    def __init__(self, momentum: float = 0.99, perclo: float = 0.05, perchi: float = 0.95) -> None:
        super().__init__()
        self.momentum, self.perclo, self.perchi = momentum, perclo, perchi
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: Tensor) -> tuple[Tensor, Tensor]:
        """Update the EMAs with the quantiles of all of `returns`; return (offset, scale)."""
        flat = returns.detach().float().reshape(-1)
        quantiles = torch.quantile(flat, torch.tensor([self.perclo, self.perchi], device=flat.device))
        self.low.mul_(self.momentum).add_((1.0 - self.momentum) * quantiles[0])
        self.high.mul_(self.momentum).add_((1.0 - self.momentum) * quantiles[1])
        return self.stats()

    def stats(self) -> tuple[Tensor, Tensor]:
        """Current (offset, scale) without updating."""
        return self.low.clone(), torch.clamp(self.high - self.low, min=1.0)


class ActorCritic(nn.Module):
    """Actor and two-hot critic trained on 15-step imagined rollouts of the world model (REFERENCE §5.4).

    The slow (target) critic supplies the values of the λ-returns and the baseline; the slow actor is the one the
    agent acts with. Both are hard copies refreshed every `slow_target_update` updates, the first update included.
    """

    def __init__(self, feat_dim: int, num_actions: int, cfg: Mapping[str, Any], precision: Precision) -> None:
        super().__init__()
        self.precision = precision
        self.actor = DistHead(
            feat_dim,
            "onehot",
            size=num_actions,
            unimix=float(cfg["actor.unimix"]),
            temp=float(cfg["actor.temp"]),
            **mlp_options(cfg, "actor"),
        )
        if cfg["actor.dist"] not in ("auto", "onehot"):
            raise ValueError(f"actor.dist {cfg['actor.dist']!r}: only one-hot actions exist for the compiler")
        self.critic = DistHead(feat_dim, cfg["critic.dist"], **mlp_options(cfg, "critic"))
        self.slow_target = bool(cfg["slow_target"])
        self.slow_target_update = int(cfg["slow_target_update"])
        self.slow_target_fraction = float(cfg["slow_target_fraction"])
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

        self.reward_perc = bool(cfg["reward_perc"])
        self.return_normalizer = PercentileNormalizer(
            float(cfg["reward_perc_params.momentum"]),
            float(cfg["reward_perc_params.perclo"]),
            float(cfg["reward_perc_params.perchi"]),
        )
        self.lambda_ = float(cfg["discount_lambda"])
        self.horizon = int(cfg["imag_horizon"])
        self.actor_ent = float(cfg["actor_ent"])
        self.ent_free = float(cfg["ent_free"])
        self.to(precision.device)  # before the optimisers, so that they hold the parameters on their final device
        self.actor_opt = optimizer_from_config("actor", cfg, "actor_opt", [self.actor], precision)
        self.critic_opt = optimizer_from_config("critic", cfg, "critic_opt", [self.critic], precision)

    def acting_actor(self) -> DistHead:
        """The actor used to act: the slow copy when slow targets are on (REFERENCE §5.4 "Acting", §7.5)."""
        return self.target_actor if self.slow_target else self.actor

    def value_critic(self) -> DistHead:
        """The critic whose values build the λ-returns and the baseline."""
        return self.target_critic if self.slow_target else self.critic

    @torch.no_grad()
    def imagine(self, world_model: WorldModel, start: State, is_terminal: Tensor) -> dict[str, Tensor]:
        """Imagined rollout from every posterior state: feat, action, reward, discount, weight, value, target.

        start: posterior (B, T, ...); is_terminal: (B, T). All outputs are (N=B·T, H+1) or (N, H+1, ...), except
        `target` (N, H). Nothing here needs gradients: REINFORCE only differentiates log π at detached features.
        """
        start = flatten_time(start)  # (N, ...)
        with self.precision.autocast():
            states, action = world_model.rssm.imagine(lambda feat: self.actor(feat).sample(), start, self.horizon)
            feat = world_model.rssm.get_feat(states)  # (N, H+1, F)
            assert feat.shape[:2] == (start["deter"].shape[0], self.horizon + 1), feat.shape
            reward = world_model.reward_head(feat).mean()  # (N, H+1)
            discount = world_model.discount_head(feat).mean()  # (N, H+1)
            # The start state's discount is known from the data, not predicted.
            discount[:, 0] = world_model.discount_target(is_terminal.reshape(-1))
            value = self.value_critic()(feat).mean()  # (N, H+1)
        weight = torch.cumprod(torch.cat([torch.ones_like(discount[:, :1]), discount[:, :-1]], 1), 1)  # (N, H+1)
        target = lambda_return(reward[:, :-1], value[:, :-1], discount[:, :-1], value[:, -1], self.lambda_)  # (N, H)
        return {
            "feat": feat.float(),
            "action": action,
            "reward": reward,
            "discount": discount,
            "weight": weight,
            "value": value,
            "target": target,
        }

    def train_step(self, world_model: WorldModel, start: State, is_terminal: Tensor) -> dict[str, Tensor]:
        """One actor and one critic update from imagined rollouts (REFERENCE §5.4)."""
        seq = self.imagine(world_model, start, is_terminal)
        target, weight, value = seq["target"], seq["weight"], seq["value"]
        if self.reward_perc:
            offset, scale = self.return_normalizer.update(target[:, 1:])
        else:
            offset, scale = torch.zeros((), device=target.device), torch.ones((), device=target.device)

        with self.precision.autocast():
            # Actor: the policy at state t chose action t+1; its advantage compares G_{t+1} to the slow value of t.
            policy = self.actor(seq["feat"][:, :-2])
            advantage = (target[:, 1:] - offset) / scale - (value[:, :-2] - offset) / scale  # (N, H-1)
            entropy = policy.entropy()  # (N, H-1)
            objective = policy.log_prob(seq["action"][:, 1:-1]) * advantage
            objective = objective + self.actor_ent * entropy.clamp(max=self.ent_free)
            actor_loss = -(weight[:, :-2] * objective).mean()
            critic_dist = self.critic(seq["feat"][:, :-1])
            critic_loss = -(weight[:, :-1] * critic_dist.log_prob(target)).mean()

        metrics = self.actor_opt.step(actor_loss)
        metrics.update(self.critic_opt.step(critic_loss))
        self.update_slow_targets()
        metrics.update(
            {
                "critic": critic_dist.mean().mean().detach(),
                "critic_slow": value.mean(),
                "critic_target": target.mean(),
                "actor_ent": entropy.mean().detach(),
                "actor_advantage": advantage.mean(),
                "actor_advantage_std": advantage.std(),
                "actor_advantage_max": advantage.max(),
                "ret_EMA_05": self.return_normalizer.low.clone(),
                "ret_EMA_95": self.return_normalizer.high.clone(),
                "ret_scale": scale,
                "ret_offset": offset,
            }
        )
        return metrics

    @torch.no_grad()
    def update_slow_targets(self) -> None:
        """Every `slow_target_update` updates (the first included) move the slow nets to the online ones."""
        if self.updates.item() % self.slow_target_update == 0:
            mix = 1.0 if self.updates.item() == 0 else self.slow_target_fraction
            for online, slow in ((self.actor, self.target_actor), (self.critic, self.target_critic)):
                for source, dest in zip(online.parameters(), slow.parameters()):
                    if mix == 1.0:
                        dest.copy_(source)
                    else:
                        dest.lerp_(source, mix)
        self.updates += 1
