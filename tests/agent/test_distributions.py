"""Hand-computed checks of the head distributions (REFERENCE §5.2)."""

from __future__ import annotations

import math

import pytest
import torch

from compilerdream.agent.distributions import Bernoulli, OneHotCategorical, TwoHot, UnitGaussian, categorical_kl

# 5 bins on [-1, 1] sit at -1, -0.5, 0, 0.5, 1; these logits are the log of these probabilities.
PROBS = [0.1, 0.2, 0.3, 0.25, 0.15]


def five_bins() -> TwoHot:
    return TwoHot(torch.tensor(PROBS).log(), low=-1.0, high=1.0)


def test_two_hot_mean_is_probability_weighted_bins_and_mode_equals_mean():
    # 0.1·(-1) + 0.2·(-0.5) + 0.3·0 + 0.25·0.5 + 0.15·1 = -0.1 - 0.1 + 0 + 0.125 + 0.15 = 0.075
    dist = five_bins()
    assert dist.mean().item() == pytest.approx(0.075, abs=1e-6)
    assert dist.mode().item() == pytest.approx(0.075, abs=1e-6)


@pytest.mark.parametrize(
    "value, expected",
    [
        # Midway between bins 0 and 0.5: weights 0.5 / 0.5.
        (0.25, 0.5 * math.log(0.3) + 0.5 * math.log(0.25)),
        # 0.1 is 0.1 from bin 0 and 0.4 from bin 0.5: weights 0.4/0.5 = 0.8 and 0.2.
        (0.1, 0.8 * math.log(0.3) + 0.2 * math.log(0.25)),
        # Exactly on a bin: all weight on that bin.
        (0.5, math.log(0.25)),
        (-0.5, math.log(0.2)),
        (-1.0, math.log(0.1)),
        (1.0, math.log(0.15)),
        # Outside the range: clipped to the edge bin.
        (2.0, math.log(0.15)),
        (-7.0, math.log(0.1)),
    ],
)
def test_two_hot_log_prob_weights_neighbouring_bins_by_inverse_distance(value, expected):
    assert five_bins().log_prob(torch.tensor(value)).item() == pytest.approx(expected, abs=1e-6)


def test_two_hot_default_bins_are_255_linear_bins_on_minus3_3_without_symlog():
    logits = torch.zeros(255, requires_grad=True)
    dist = TwoHot(logits)
    assert dist.bins[0].item() == -3.0 and dist.bins[-1].item() == 3.0
    assert dist.bins[127].item() == pytest.approx(0.0, abs=1e-6)  # -3 + 127·6/254
    # d(-log_prob)/d logits = softmax - two-hot weights, so the weights are recoverable from the gradient.
    (grad,) = torch.autograd.grad(-dist.log_prob(torch.tensor(2.0)), logits)
    weights = dist.logits.softmax(-1).detach() - grad
    # 2.0 lies between bins 211 (1.98425) and 212 (2.00787): (2+3)/(6/254) = 211.667 -> weights 1/3 and 2/3.
    assert (weights.abs() > 1e-6).nonzero().flatten().tolist() == [211, 212]
    assert weights[211].item() == pytest.approx(1 / 3, abs=1e-4)
    # Linear bins, no symlog: the target's two-hot encodes 2.0 itself (symlog bins would encode ln 3 = 1.0986).
    assert (weights * dist.bins).sum().item() == pytest.approx(2.0, abs=1e-5)


def test_two_hot_log_prob_is_float32_for_half_logits():
    dist = TwoHot(torch.zeros(4, 255, dtype=torch.float16))
    result = dist.log_prob(torch.full((4,), 0.3, dtype=torch.float16))
    assert result.dtype == torch.float32
    assert result[0].item() == pytest.approx(math.log(1 / 255), abs=1e-5)  # uniform: log(1/255) whatever the weights


def test_one_hot_categorical_unimix_mode_log_prob_and_entropy():
    # softmax([100, 0, 0, 0]) ≈ [1, 0, 0, 0]; with 1% unimix: [0.99 + 0.0025, 0.0025, 0.0025, 0.0025].
    dist = OneHotCategorical(torch.tensor([100.0, 0.0, 0.0, 0.0]), unimix=0.01)
    assert dist.probs.tolist() == pytest.approx([0.9925, 0.0025, 0.0025, 0.0025], abs=1e-6)
    assert dist.mode().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert dist.log_prob(torch.tensor([0.0, 1.0, 0.0, 0.0])).item() == pytest.approx(math.log(0.0025), abs=1e-5)
    # A noisy action counts as its argmax.
    assert dist.log_prob(torch.tensor([0.1, 0.2, 0.6, 0.1])).item() == pytest.approx(math.log(0.0025), abs=1e-5)
    # -(0.9925·ln 0.9925 + 3·0.0025·ln 0.0025) = 0.0074718 + 0.0449359 = 0.0524077
    assert dist.entropy().item() == pytest.approx(0.0524077, abs=1e-5)


def test_one_hot_sample_is_one_hot_with_straight_through_gradient():
    logits = torch.tensor([[0.5, -0.2, 0.1]], requires_grad=True)
    torch.manual_seed(0)
    dist = OneHotCategorical(logits, unimix=0.01)
    sample = dist.sample()
    assert sorted(sample.detach().flatten().tolist()) == [0.0, 0.0, 1.0]
    weights = torch.tensor([[1.0, 2.0, 3.0]])
    (grad_sample,) = torch.autograd.grad((sample * weights).sum(), logits)
    (grad_probs,) = torch.autograd.grad((OneHotCategorical(logits, unimix=0.01).probs * weights).sum(), logits)
    assert torch.allclose(grad_sample, grad_probs)


def test_one_hot_sample_frequencies_follow_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.2])
    samples = OneHotCategorical(probs.log().expand(20000, 3)).sample()
    assert samples.mean(0).tolist() == pytest.approx(probs.tolist(), abs=0.015)


def test_unit_gaussian_log_prob_is_minus_half_squared_error_summed():
    dist = UnitGaussian(torch.tensor([[1.0, 2.0]]))
    # -0.5·((0-1)² + (4-2)²) = -0.5·5 = -2.5
    assert dist.log_prob(torch.tensor([[0.0, 4.0]])).tolist() == [-2.5]
    assert UnitGaussian(torch.tensor([1.0, 2.0]), event_dims=0).log_prob(torch.tensor([0.0, 4.0])).tolist() == [
        -0.5,
        -2.0,
    ]


def test_bernoulli_soft_target_log_prob():
    # logit 0: p = 0.5, any soft target gives ln 0.5.
    assert Bernoulli(torch.tensor(0.0)).log_prob(torch.tensor(0.99)).item() == pytest.approx(math.log(0.5))
    # logit ln 3: p = 0.75; target 0.5 -> 0.5·ln 0.75 + 0.5·ln 0.25 = -0.1438410 - 0.6931472 = -0.8369882
    dist = Bernoulli(torch.tensor(math.log(3.0)))
    assert dist.log_prob(torch.tensor(0.5)).item() == pytest.approx(-0.8369882, abs=1e-6)
    assert dist.mean().item() == pytest.approx(0.75)


def test_categorical_kl_sums_over_categoricals():
    # KL([.9,.1] ‖ [.1,.9]) = 0.9·ln 9 + 0.1·ln(1/9) = 0.8·ln 9 = 1.7577796
    post = torch.tensor([0.9, 0.1]).log().expand(2, 2)  # two categoricals (S=2, K=2)
    prior = torch.tensor([0.1, 0.9]).log().expand(2, 2)
    assert categorical_kl(post, prior).item() == pytest.approx(2 * 0.8 * math.log(9), abs=1e-5)
    assert categorical_kl(post, post).item() == pytest.approx(0.0, abs=1e-7)
