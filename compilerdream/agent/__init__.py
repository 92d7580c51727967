"""PyTorch agent of CompilerDream: world model + actor-critic (REFERENCE §5; DreamerV2/DreamerV3 §2)."""

from __future__ import annotations

from typing import Any

from compilerdream.agent.agent import Agent
from compilerdream.agent.behavior import ActorCritic
from compilerdream.agent.world_model import WorldModel

__all__ = ["AGENT_DEFAULTS", "ActorCritic", "Agent", "WorldModel"]

# Every config key the agent reads, with its value under the reference recipe `--configs compilergym compilergym_dv3`
# (REFERENCE §5.1; §1.1 for `precision`). configs.yaml must provide each of them; the agent raises KeyError otherwise.
AGENT_DEFAULTS: dict[str, Any] = {
    # RSSM (REFERENCE §5.2): `stoch` categoricals of `discrete` classes.
    "rssm.hidden": 1024,
    "rssm.deter": 1024,
    "rssm.stoch": 32,
    "rssm.discrete": 32,
    "rssm.act": "silu",
    "rssm.norm": "layer",
    "rssm.unimix": 0.01,
    # Encoder / decoder: vector observations only.
    "encoder.mlp_keys": ".*",
    "encoder.act": "silu",
    "encoder.norm": "layer",
    "encoder.mlp_layers": 4,
    "encoder.mlp_units": 400,
    "decoder.mlp_keys": ".*",
    "decoder.act": "silu",
    "decoder.norm": "layer",
    "decoder.mlp_layers": 4,
    "decoder.mlp_units": 400,
    # Heads.
    "reward_head.layers": 4,
    "reward_head.units": 400,
    "reward_head.act": "silu",
    "reward_head.norm": "layer",
    "reward_head.dist": "disc",
    "discount_head.layers": 4,
    "discount_head.units": 400,
    "discount_head.act": "silu",
    "discount_head.norm": "layer",
    "actor.layers": 4,
    "actor.units": 400,
    "actor.act": "silu",
    "actor.norm": "layer",
    "actor.dist": "auto",
    "actor.unimix": 0.01,
    "actor.temp": 1.0,
    "critic.layers": 4,
    "critic.units": 400,
    "critic.act": "silu",
    "critic.norm": "layer",
    "critic.dist": "disc",
    # World-model loss (REFERENCE §5.3).
    "loss_scales.kl": 0.1,
    "loss_scales.reward": 1.0,
    "loss_scales.discount": 5.0,
    "loss_scales.autophase": 100.0,
    "loss_scales.action_histogram": 10.0,
    "loss_scales.instcount": 1.0,
    "kl.free": 1.0,
    "kl.balance": 0.8,
    "kl.forward": False,
    "grad_heads": ["decoder", "reward"],
    "discount_emph": 1.0,
    # Optimisers.
    "model_opt.lr": 1e-4,
    "model_opt.eps": 1e-5,
    "model_opt.clip": 100.0,
    "model_opt.wd": 1e-5,
    "actor_opt.lr": 3e-5,
    "actor_opt.eps": 1e-5,
    "actor_opt.clip": 100.0,
    "actor_opt.wd": 1e-5,
    "critic_opt.lr": 3e-5,
    "critic_opt.eps": 1e-5,
    "critic_opt.clip": 100.0,
    "critic_opt.wd": 1e-5,
    # Actor-critic (REFERENCE §5.4).
    "discount": 0.99,
    "discount_lambda": 0.95,
    "imag_horizon": 15,
    "actor_ent": 3e-4,
    "ent_free": 2.0,
    "slow_target": True,
    "slow_target_update": 100,
    "slow_target_fraction": 1.0,
    "reward_perc": True,
    "reward_perc_params.momentum": 0.99,
    "reward_perc_params.perclo": 0.05,
    "reward_perc_params.perchi": 0.95,
    # Acting.
    "expl_noise": 0.05,
    "eval_noise": 0.0,
    "eval_deter": True,
    "eval_state_mean": False,
    "precision": 16,
}
