"""RSSM shapes, is_first resets, the LayerNorm-GRU formula and KL balancing (REFERENCE §5.2, §5.3)."""

from __future__ import annotations

import math

import pytest
import torch

from compilerdream.agent.rssm import RSSM, LayerNormGRUCell, kl_balance_loss

EMBED, ACTIONS, DETER, STOCH, CLASSES = 8, 3, 16, 4, 4


def tiny_rssm() -> RSSM:
    torch.manual_seed(0)
    return RSSM(EMBED, ACTIONS, deter=DETER, stoch=STOCH, discrete=CLASSES, hidden=16)


def random_state(rssm: RSSM, batch: int) -> dict:
    return {
        "deter": torch.randn(batch, DETER),
        "stoch": torch.nn.functional.one_hot(torch.randint(0, CLASSES, (batch, STOCH)), CLASSES).float(),
        "logit": torch.randn(batch, STOCH, CLASSES),
    }


def test_observe_and_imagine_shapes():
    rssm = tiny_rssm()
    batch, length, horizon = 3, 5, 7
    embed = torch.randn(batch, length, EMBED)
    actions = torch.nn.functional.one_hot(torch.randint(0, ACTIONS, (batch, length)), ACTIONS).float()
    is_first = torch.zeros(batch, length)
    is_first[:, 0] = 1
    post, prior = rssm.observe(embed, actions, is_first)
    for state in (post, prior):
        assert state["deter"].shape == (batch, length, DETER)
        assert state["stoch"].shape == state["logit"].shape == (batch, length, STOCH, CLASSES)
        assert torch.equal(state["stoch"].sum(-1), torch.ones(batch, length, STOCH))  # one-hot latents
    assert torch.equal(post["deter"], prior["deter"])  # the posterior only replaces the stochastic part
    assert rssm.get_feat(post).shape == (batch, length, STOCH * CLASSES + DETER)

    start = {key: value[:, -1] for key, value in post.items()}
    states, imagined_actions = rssm.imagine(
        lambda feat: torch.eye(ACTIONS)[torch.zeros(len(feat), dtype=torch.long)], start, horizon
    )
    assert states["deter"].shape == (batch, horizon + 1, DETER)
    assert torch.equal(states["deter"][:, 0], start["deter"])
    assert imagined_actions.shape == (batch, horizon + 1, ACTIONS)
    assert imagined_actions[:, 0].abs().sum() == 0 and torch.all(imagined_actions[:, 1:, 0] == 1)

    open_loop = rssm.imagine_actions(start, imagined_actions[:, 1:], sample=False)
    assert open_loop["stoch"].shape == (batch, horizon, STOCH, CLASSES)


def test_is_first_resets_state_and_action_per_row():
    rssm = tiny_rssm()
    prev = random_state(rssm, 2)
    prev_action = torch.eye(ACTIONS)[[1, 2]]
    embed = torch.randn(2, EMBED)
    is_first = torch.tensor([1.0, 0.0])  # row 0 starts an episode, row 1 continues
    post, prior = rssm.obs_step(prev, prev_action, embed, is_first, sample=False)
    fresh, _ = rssm.obs_step(rssm.initial(2), torch.zeros(2, ACTIONS), embed, torch.zeros(2), sample=False)
    continued, _ = rssm.obs_step(prev, prev_action, embed, torch.zeros(2), sample=False)
    for key in ("deter", "stoch", "logit"):
        assert torch.allclose(post[key][0], fresh[key][0])
        assert torch.allclose(post[key][1], continued[key][1])
    assert not torch.allclose(post["deter"][0], continued["deter"][0])


def test_observe_in_two_halves_with_carried_state_equals_one_pass():
    rssm = tiny_rssm()
    embed = torch.randn(2, 6, EMBED)
    actions = torch.nn.functional.one_hot(torch.randint(0, ACTIONS, (2, 6)), ACTIONS).float()
    is_first = torch.zeros(2, 6)
    whole, _ = rssm.observe(embed, actions, is_first, sample=False)
    first, _ = rssm.observe(embed[:, :3], actions[:, :3], is_first[:, :3], sample=False)
    last = {key: value[:, -1] for key, value in first.items()}
    second, _ = rssm.observe(embed[:, 3:], actions[:, 3:], is_first[:, 3:], state=last, sample=False)
    assert torch.allclose(whole["deter"][:, 3:], second["deter"], atol=1e-6)


def test_layer_norm_gru_cell_formula_with_zero_weights():
    # With W = 0, b = 0 and no norm: r = σ(0) = 0.5, c = tanh(0.5·0) = 0, u = σ(0 - 1) = 0.2689414,
    # so h' = u·0 + (1 - u)·h = 0.7310586·h.
    cell = LayerNormGRUCell(3, 2, norm=False)
    torch.nn.init.zeros_(cell.linear.weight)
    torch.nn.init.zeros_(cell.linear.bias)
    hidden = torch.tensor([[1.0, -2.0]])
    new_hidden = cell(torch.randn(1, 3), hidden)
    assert new_hidden.tolist()[0] == pytest.approx([0.7310586, -1.4621172], abs=1e-6)
    assert isinstance(LayerNormGRUCell(3, 2).norm, torch.nn.LayerNorm)


def logits(probs: list[float], requires_grad: bool = False) -> torch.Tensor:
    """(B=1, T=1, S=1, K) log-probabilities."""
    return torch.tensor(probs).log().reshape(1, 1, 1, -1).requires_grad_(requires_grad)


def test_kl_balance_under_free_bits_is_free_and_has_no_gradient():
    post = logits([0.6, 0.4], requires_grad=True)
    prior = logits([0.5, 0.5], requires_grad=True)
    # KL([.6,.4] ‖ [.5,.5]) = 0.6·ln 1.2 + 0.4·ln 0.8 = 0.1093929 - 0.0892574 = 0.0201355 < free = 1
    loss, value = kl_balance_loss(post, prior, free=1.0, balance=0.8)
    assert value.item() == pytest.approx(0.0201355, abs=1e-6)
    assert loss.item() == pytest.approx(1.0)  # 0.2·max(0.02, 1) + 0.8·max(0.02, 1)
    loss.backward()
    assert torch.all(post.grad == 0) and torch.all(prior.grad == 0)


def test_kl_balance_over_free_bits_splits_the_gradient_80_20():
    p, q = [0.9, 0.1], [0.1, 0.9]
    post, prior = logits(p, requires_grad=True), logits(q, requires_grad=True)
    loss, value = kl_balance_loss(post, prior, free=1.0, balance=0.8)
    kl = 0.8 * math.log(9)  # 0.9·ln 9 + 0.1·ln(1/9) = 1.7577796 > 1
    assert value.item() == pytest.approx(kl, abs=1e-5)
    assert loss.item() == pytest.approx(kl, abs=1e-5)  # 0.2·KL + 0.8·KL
    loss.backward()
    # d KL(p ‖ softmax(z)) / dz = q - p; the prior gets 0.8 of it: 0.8·([.1, .9] - [.9, .1]) = [-0.64, 0.64].
    assert prior.grad.flatten().tolist() == pytest.approx([-0.64, 0.64], abs=1e-5)
    # d KL(softmax(z) ‖ q) / dz_i = p_i·(ln(p_i/q_i) - KL) = [0.9·0.2·ln 9, 0.1·(-1.8)·ln 9] = ±0.18·ln 9;
    # the posterior gets 0.2 of it: ±0.036·ln 9 = ±0.0791001.
    assert post.grad.flatten().tolist() == pytest.approx([0.036 * math.log(9), -0.036 * math.log(9)], abs=1e-5)


def test_kl_free_bits_apply_to_the_batch_mean_not_per_step():
    # Steps with KL 0 and 1.7578: per-step clipping would give (1 + 1.7578)/2 = 1.3789, batch mean gives max(0.8789, 1).
    post = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log().reshape(1, 2, 1, 2)
    prior = torch.tensor([[0.5, 0.5], [0.1, 0.9]]).log().reshape(1, 2, 1, 2)
    loss, value = kl_balance_loss(post, prior, free=1.0, balance=0.8)
    assert value.flatten().tolist() == pytest.approx([0.0, 0.8 * math.log(9)], abs=1e-5)
    assert loss.item() == pytest.approx(1.0)
    loss, _ = kl_balance_loss(post, prior, free=0.5, balance=0.8)
    assert loss.item() == pytest.approx(0.4 * math.log(9), abs=1e-5)  # mean KL 0.8789 > 0.5
