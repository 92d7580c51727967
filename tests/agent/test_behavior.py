"""λ-returns, percentile return normalisation and the actor-critic's rollout bookkeeping (REFERENCE §5.4)."""

from __future__ import annotations

import pytest
import torch

from compilerdream.agent import AGENT_DEFAULTS, ActorCritic, WorldModel
from compilerdream.agent.behavior import PercentileNormalizer, lambda_return
from compilerdream.agent.networks import Precision

NUM_ACTIONS = 3
OBS_SPACE = {"autophase": (6,), "action_histogram": (NUM_ACTIONS,)}


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny nets run faster on one thread, and 2-thread OpenMP stalls badly when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> dict:
    config = dict(AGENT_DEFAULTS, **{"rssm.hidden": 16, "rssm.deter": 16, "rssm.stoch": 4, "rssm.discrete": 4})
    for block in ("encoder", "decoder"):
        config.update({f"{block}.mlp_layers": 1, f"{block}.mlp_units": 16})
    for block in ("reward_head", "discount_head", "actor", "critic"):
        config.update({f"{block}.layers": 1, f"{block}.units": 16})
    config.update({"imag_horizon": 4, **overrides})
    return config


def test_lambda_return_by_hand():
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    value = torch.tensor([[10.0, 20.0, 30.0]])  # v_0 is never used: G_t bootstraps from v_{t+1}
    discount = torch.tensor([[0.5, 0.5, 0.5]])
    bootstrap = torch.tensor([40.0])
    # λ = 0.5:
    # G_2 = 3 + 0.5·(0.5·40 + 0.5·40)      = 3 + 20     = 23
    # G_1 = 2 + 0.5·(0.5·30 + 0.5·23)      = 2 + 13.25  = 15.25
    # G_0 = 1 + 0.5·(0.5·20 + 0.5·15.25)   = 1 + 8.8125 = 9.8125
    assert lambda_return(reward, value, discount, bootstrap, 0.5).tolist() == [[9.8125, 15.25, 23.0]]
    # λ = 0 is TD(0): G_t = r_t + d_t·v_{t+1} = [1 + 10, 2 + 15, 3 + 20].
    assert lambda_return(reward, value, discount, bootstrap, 0.0).tolist() == [[11.0, 17.0, 23.0]]
    # λ = 1 is the discounted Monte-Carlo return: G_2 = 3 + 0.5·40 = 23, G_1 = 2 + 11.5 = 13.5, G_0 = 1 + 6.75.
    assert lambda_return(reward, value, discount, bootstrap, 1.0).tolist() == [[7.75, 13.5, 23.0]]
    # A zero discount (terminal) stops the bootstrap: G_1 = r_1 = 2 whatever comes after.
    terminal = torch.tensor([[0.5, 0.0, 0.5]])
    assert lambda_return(reward, value, terminal, bootstrap, 0.5)[0, 1].item() == 2.0


def test_percentile_normalizer_ema_after_one_and_two_updates():
    returns = torch.arange(101.0)  # 5% quantile = 5, 95% quantile = 95 (linear interpolation hits them exactly)
    normalizer = PercentileNormalizer(momentum=0.99, perclo=0.05, perchi=0.95)
    assert normalizer.low.item() == 0.0 and normalizer.high.item() == 0.0
    # One update from 0: lo = 0.01·5 = 0.05, hi = 0.01·95 = 0.95; hi - lo = 0.9 -> scale floored at 1.
    offset, scale = normalizer.update(returns)
    assert offset.item() == pytest.approx(0.05) and scale.item() == 1.0
    assert normalizer.high.item() == pytest.approx(0.95)
    # Two updates: lo = 0.99·0.05 + 0.05 = 0.0995, hi = 0.99·0.95 + 0.95 = 1.8905; scale = 1.791.
    offset, scale = normalizer.update(returns)
    assert offset.item() == pytest.approx(0.0995)
    assert normalizer.high.item() == pytest.approx(1.8905)
    assert scale.item() == pytest.approx(1.791)
    # The EMAs are buffers, so checkpoints carry them.
    assert set(normalizer.state_dict()) == {"low", "high"}


def test_percentile_normalizer_without_momentum_uses_the_batch_quantiles():
    offset, scale = PercentileNormalizer(momentum=0.0).update(torch.arange(101.0).reshape(1, 101))
    assert offset.item() == pytest.approx(5.0) and scale.item() == pytest.approx(90.0)


def build(config: dict) -> tuple[WorldModel, ActorCritic]:
    torch.manual_seed(0)
    precision = Precision("cpu", config["precision"])
    world_model = WorldModel(OBS_SPACE, NUM_ACTIONS, config, precision)
    return world_model, ActorCritic(world_model.rssm.feat_dim, NUM_ACTIONS, config, precision)


def posterior(world_model: WorldModel, batch: int = 2, length: int = 3) -> dict:
    embed = torch.randn(batch, length, world_model.encoder.out_dim)
    actions = torch.zeros(batch, length, NUM_ACTIONS)
    post, _ = world_model.rssm.observe(embed, actions, torch.zeros(batch, length))
    return {key: value.detach() for key, value in post.items()}


def test_imagined_rollout_weights_start_from_the_true_discount():
    world_model, behavior = build(tiny_config())
    start = posterior(world_model)
    is_terminal = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    seq = behavior.imagine(world_model, start, is_terminal)
    horizon = 4
    assert seq["feat"].shape == (6, horizon + 1, world_model.rssm.feat_dim)
    assert seq["action"].shape == (6, horizon + 1, NUM_ACTIONS) and seq["target"].shape == (6, horizon)
    # d_0 is (1 - is_terminal)·0.99; weights = cumprod([1, d_0, ..., d_{H-1}]).
    assert seq["discount"][:, 0].tolist() == pytest.approx([0.99, 0.99, 0.0, 0.99, 0.0, 0.99])
    assert torch.all(seq["weight"][:, 0] == 1.0)
    assert torch.allclose(seq["weight"][:, 1], seq["discount"][:, 0])
    assert torch.allclose(seq["weight"][:, 2], seq["discount"][:, 0] * seq["discount"][:, 1])
    assert torch.all(seq["weight"][[2, 4], 1:] == 0.0)  # rollouts from terminal states carry no weight


def test_slow_targets_are_copied_on_the_first_update_and_then_every_period():
    world_model, behavior = build(tiny_config(**{"slow_target_update": 2, "actor_opt.lr": 1e-2, "critic_opt.lr": 1e-2}))
    start, is_terminal = posterior(world_model), torch.zeros(2, 3)

    def same(online, slow) -> bool:
        return all(torch.equal(a, b) for a, b in zip(online.parameters(), slow.parameters()))

    behavior.train_step(world_model, start, is_terminal)  # update 0: copy
    assert same(behavior.critic, behavior.target_critic) and same(behavior.actor, behavior.target_actor)
    behavior.train_step(world_model, start, is_terminal)  # update 1: online moves, slow stays
    assert not same(behavior.critic, behavior.target_critic) and not same(behavior.actor, behavior.target_actor)
    behavior.train_step(world_model, start, is_terminal)  # update 2: copy again
    assert same(behavior.critic, behavior.target_critic) and same(behavior.actor, behavior.target_actor)
    assert behavior.updates.item() == 3


def test_actor_critic_metrics_and_normalizer_updates():
    world_model, behavior = build(tiny_config())
    metrics = behavior.train_step(world_model, posterior(world_model), torch.zeros(2, 3))
    expected = {
        "actor_loss",
        "actor_grad_norm",
        "critic_loss",
        "critic_grad_norm",
        "critic",
        "critic_slow",
        "critic_target",
        "actor_ent",
        "actor_advantage",
        "actor_advantage_std",
        "actor_advantage_max",
        "ret_EMA_05",
        "ret_EMA_95",
        "ret_scale",
        "ret_offset",
    }
    assert expected <= set(metrics)
    assert all(torch.isfinite(torch.as_tensor(value)) for value in metrics.values())
    assert metrics["ret_scale"].item() == 1.0  # tiny early returns: the floor at 1
    assert metrics["ret_EMA_05"].item() == pytest.approx(metrics["ret_offset"].item())
