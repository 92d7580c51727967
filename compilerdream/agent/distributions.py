"""Output distributions of the agent's heads (REFERENCE §5.2; DreamerV3 §2 "two-hot", DreamerV2 §2 categorical latents)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["TwoHot", "OneHotCategorical", "UnitGaussian", "Bernoulli", "categorical_kl"]


class TwoHot:
    """Categorical over equally spaced bins whose value is read as the probability-weighted bin (REFERENCE §5.2 `disc`).

    Unlike DreamerV3 (symlog bins on ±20) the reference uses 255 **linear** bins on [-3, 3] with the identity
    transform and no symlog (REFERENCE §7.1); we keep that so trained values mean the same thing.

    Args:
        logits: (..., bins) unnormalised log-probabilities.
        low, high: value of the first and last bin.
    """

    def __init__(self, logits: Tensor, low: float = -3.0, high: float = 3.0) -> None:
        # All arithmetic in float32: under fp16 autocast the 255-way softmax and the targets lose too much precision.
        self.logits = logits.float()
        self.bins = torch.linspace(low, high, logits.shape[-1], device=logits.device, dtype=torch.float32)

    def mean(self) -> Tensor:
        """Expected value Σ softmax(logits)·bins, shape (...)."""
        return (self.logits.softmax(-1) * self.bins).sum(-1)

    def mode(self) -> Tensor:
        """Same as the mean, as in the reference (the argmax bin would quantise rewards to 6/254 steps)."""
        return self.mean()

    def log_prob(self, value: Tensor) -> Tensor:
        """Two-hot cross-entropy: log-probability of the two bins around `value`, weighted by inverse distance.

        `value` (...) is clipped to [low, high]; a value exactly on a bin puts all its weight on that bin.
        """
        assert value.shape == self.logits.shape[:-1], (value.shape, self.logits.shape)
        value = value.float().clamp(self.bins[0], self.bins[-1])
        flat = value.reshape(-1).contiguous()
        # Index of the first bin strictly above the value, kept in [1, n-1] so that both neighbours exist.
        above = torch.searchsorted(self.bins, flat, right=True).clamp(1, len(self.bins) - 1)
        below = above - 1
        weight_below = (self.bins[above] - flat) / (self.bins[above] - self.bins[below])
        weight_above = 1.0 - weight_below
        log_probs = self.logits.log_softmax(-1).reshape(-1, len(self.bins))  # (N, bins)
        rows = torch.arange(len(flat), device=flat.device)
        result = weight_below * log_probs[rows, below] + weight_above * log_probs[rows, above]
        return result.reshape(value.shape)


class OneHotCategorical:
    """Categorical with one-hot samples, uniform mixing and straight-through gradients (DreamerV2 §2, DreamerV3 §2).

    Probabilities are `(1 - unimix)·softmax(logits) + unimix/K`, so no class has probability zero and the KL to it
    stays finite. `logits` after mixing are available as `.logits`.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0) -> None:
        logits = logits.float()
        if unimix > 0.0:
            probs = (1.0 - unimix) * logits.softmax(-1) + unimix / logits.shape[-1]
            logits = probs.log()
        self.logits = logits.log_softmax(-1)
        self.probs = self.logits.exp()

    def sample(self) -> Tensor:
        """One-hot sample (...,K) whose gradient is that of the probabilities (straight-through)."""
        # Gumbel-max draws from the same categorical as torch.multinomial, several times faster on CPU.
        probs = self.probs.detach()
        uniform = torch.rand_like(probs, dtype=torch.float32).clamp_(1e-20, 1.0)
        index = (torch.log(probs.float().clamp_min(1e-30)) - torch.log(-torch.log(uniform))).argmax(-1)
        sample = F.one_hot(index, self.probs.shape[-1]).to(self.probs.dtype)
        return self._straight_through(sample)

    def mode(self) -> Tensor:
        """One-hot argmax (...,K), straight-through like `sample`."""
        mode = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)
        return self._straight_through(mode)

    def _straight_through(self, onehot: Tensor) -> Tensor:
        """onehot + (probs - sg(probs)): the value of `onehot`, the gradient of the probabilities.

        Without a gradient to carry (imagination and acting run under no_grad) the added term is
        exactly zero, so it is skipped: two fewer passes over the tensor, the same values.
        """
        if not (self.probs.requires_grad and torch.is_grad_enabled()):
            return onehot
        return onehot + (self.probs - self.probs.detach())

    def log_prob(self, onehot: Tensor) -> Tensor:
        """Log-probability (...) of the class at the argmax of `onehot` (noisy or soft actions count as their argmax)."""
        return self.logits.gather(-1, onehot.argmax(-1, keepdim=True)).squeeze(-1)

    def entropy(self) -> Tensor:
        """Entropy in nats, shape (...)."""
        return -(self.probs * self.logits).sum(-1)


class UnitGaussian:
    """Unit-variance Gaussian with the constant dropped: log p(x) = -½·Σ(x - μ)² over the last `event_dims` dims.

    REFERENCE §5.2 ("mse") for the decoder heads.
    """

    def __init__(self, mean: Tensor, event_dims: int = 1) -> None:
        self._mean = mean.float()
        self.event_dims = event_dims

    def mean(self) -> Tensor:
        return self._mean

    def mode(self) -> Tensor:
        return self._mean

    def log_prob(self, value: Tensor) -> Tensor:
        squared = (value.float() - self._mean) ** 2
        if self.event_dims:
            squared = squared.sum(tuple(range(-self.event_dims, 0)))
        return -0.5 * squared


class Bernoulli:
    """Bernoulli over logits that accepts soft targets in [0, 1] (REFERENCE §5.2 discount head).

    log_prob(y) = y·log σ(l) + (1 - y)·log σ(-l), i.e. minus the binary cross-entropy with logits.
    """

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits.float()

    def mean(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def mode(self) -> Tensor:
        return (self.logits > 0).float()

    def log_prob(self, value: Tensor) -> Tensor:
        value = value.float()
        return value * F.logsigmoid(self.logits) + (1.0 - value) * F.logsigmoid(-self.logits)


def categorical_kl(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """KL(lhs ‖ rhs) between categoricals given as logits (..., S, K), summed over the S categoricals -> (...)."""
    lhs_log = lhs_logits.float().log_softmax(-1)
    rhs_log = rhs_logits.float().log_softmax(-1)
    return (lhs_log.exp() * (lhs_log - rhs_log)).sum((-2, -1))
