"""Discrete recurrent state-space model with a LayerNorm-GRU and balanced KL (DreamerV2 §2, REFERENCE §5.2, §5.3)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from compilerdream.agent.distributions import OneHotCategorical, categorical_kl
from compilerdream.agent.networks import LAYER_NORM_EPS, activation, linear, normalization

# A latent state: deter (B, D), stoch (B, S, K) one-hot, logit (B, S, K) log-probabilities after unimix.
# Sequences of states carry a time axis after the batch axis: (B, T, ...).
State = dict[str, Tensor]


class LayerNormGRUCell(nn.Module):
    """GRU cell with one fused linear map and LayerNorm over the gates (REFERENCE §5.2).

    parts = LN(W·[x, h] + b) split into reset r, candidate c, update u;
    r = σ(r); c = tanh(r·c); u = σ(u - 1); h' = u·c + (1 - u)·h.
    The -1 biases the update gate towards keeping h early in training.
    """

    def __init__(self, input_size: int, hidden_size: int, norm: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        # PyTorch default init here, unlike every other Linear (as in the reference).
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=True)
        self.norm = nn.LayerNorm(3 * hidden_size, eps=LAYER_NORM_EPS) if norm else nn.Identity()

    def forward(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([inputs, hidden], -1)))  # (B, 3D)
        reset, candidate, update = parts.split(self.hidden_size, -1)
        reset = torch.sigmoid(reset)
        candidate = torch.tanh(reset * candidate)
        update = torch.sigmoid(update - 1.0)
        return update * candidate + (1.0 - update) * hidden


class RSSM(nn.Module):
    """DreamerV2 RSSM with `stoch` categoricals of `discrete` classes each (REFERENCE §5.2 RSSM).

    Args:
        embed_dim: size of the encoder's embedding.
        action_dim: size of the one-hot action.
        deter: GRU state size; hidden: width of the input/output layers; unimix: uniform mix of the latents.
    """

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        deter: int = 1024,
        stoch: int = 32,
        discrete: int = 32,
        hidden: int = 1024,
        act: str = "silu",
        norm: str = "layer",
        unimix: float = 0.01,
    ) -> None:
        super().__init__()
        self.deter, self.stoch, self.discrete, self.unimix = deter, stoch, discrete, unimix
        self.action_dim = action_dim
        self.feat_dim = stoch * discrete + deter
        self.img_in = nn.Sequential(
            linear(stoch * discrete + action_dim, hidden), normalization(norm, hidden), activation(act)
        )
        self.gru = LayerNormGRUCell(hidden, deter, norm=norm == "layer")
        self.img_out = nn.Sequential(
            linear(deter, hidden), normalization(norm, hidden), activation(act), linear(hidden, stoch * discrete)
        )
        self.obs_out = nn.Sequential(
            linear(deter + embed_dim, hidden),
            normalization(norm, hidden),
            activation(act),
            linear(hidden, stoch * discrete),
        )

    def initial(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """All-zero state for `batch_size` rows (REFERENCE §5.2: the initial state is zeros)."""
        device = device if device is not None else self.img_in[0].weight.device
        latent = torch.zeros(batch_size, self.stoch, self.discrete, device=device)
        return {"deter": torch.zeros(batch_size, self.deter, device=device), "stoch": latent, "logit": latent.clone()}

    def get_feat(self, state: State) -> Tensor:
        """Feature = [flatten(stoch), deter]: (..., S·K + D)."""
        stoch = state["stoch"].flatten(-2)  # (..., S*K)
        return torch.cat([stoch, state["deter"]], -1)

    def get_dist(self, state: State) -> OneHotCategorical:
        """Latent distribution of a state (its logits already include unimix)."""
        return OneHotCategorical(state["logit"])

    def _latent(self, deter_or_input: Tensor, layers: nn.Module, sample: bool) -> tuple[Tensor, Tensor]:
        logits = layers(deter_or_input).float()  # (B, S*K)
        logits = logits.reshape(*logits.shape[:-1], self.stoch, self.discrete)  # (B, S, K)
        dist = OneHotCategorical(logits, self.unimix)
        stoch = dist.sample() if sample else dist.mode()
        return stoch, dist.logits

    def img_step(self, prev_state: State, prev_action: Tensor, sample: bool = True) -> State:
        """Prior step: (state_{t-1}, a_t) -> state_t without an observation."""
        stoch = prev_state["stoch"].flatten(-2)  # (B, S*K)
        assert stoch.shape[-1] == self.stoch * self.discrete and prev_action.shape[-1] == self.action_dim
        hidden = self.img_in(torch.cat([stoch, prev_action.to(stoch.dtype)], -1))  # (B, hidden)
        deter = self.gru(hidden, prev_state["deter"]).float()  # (B, D)
        stoch, logit = self._latent(deter, self.img_out, sample)
        return {"deter": deter, "stoch": stoch, "logit": logit}

    def obs_step(
        self, prev_state: State, prev_action: Tensor, embed: Tensor, is_first: Tensor, sample: bool = True
    ) -> tuple[State, State]:
        """Posterior step: returns (posterior, prior) for one time step.

        Rows with `is_first` start from the zero state and zero action, so episodes never leak into each other.
        """
        keep = (1.0 - is_first.float()).unsqueeze(-1)  # (B, 1)
        prev_state = {
            "deter": prev_state["deter"] * keep,
            "stoch": prev_state["stoch"] * keep.unsqueeze(-1),
            "logit": prev_state["logit"] * keep.unsqueeze(-1),
        }
        prior = self.img_step(prev_state, prev_action * keep, sample)
        stoch, logit = self._latent(torch.cat([prior["deter"], embed], -1), self.obs_out, sample)
        return {"deter": prior["deter"], "stoch": stoch, "logit": logit}, prior

    def observe(
        self, embed: Tensor, actions: Tensor, is_first: Tensor, state: State | None = None, sample: bool = True
    ) -> tuple[State, State]:
        """Filter a sequence: embed (B, T, E), actions (B, T, A), is_first (B, T) -> (post, prior) of (B, T, ...).

        `actions[:, t]` is the action that led to observation t (zeros at reset).
        """
        batch, length = embed.shape[:2]
        assert actions.shape[:2] == (batch, length) and is_first.shape == (batch, length), (
            embed.shape,
            actions.shape,
            is_first.shape,
        )
        state = self.initial(batch, embed.device) if state is None else state
        posts, priors = [], []
        for t in range(length):
            state, prior = self.obs_step(state, actions[:, t], embed[:, t], is_first[:, t], sample)
            posts.append(state)
            priors.append(prior)
        return stack_states(posts), stack_states(priors)

    def imagine(
        self, policy: Callable[[Tensor], Tensor], start: State, horizon: int, sample: bool = True
    ) -> tuple[State, Tensor]:
        """Roll the prior forward `horizon` steps with actions a_t = policy(feat_{t-1}).

        start: states (N, ...). Returns states (N, H+1, ...) including the start and actions (N, H+1, A) where
        actions[:, t] led to state t and actions[:, 0] is zero (REFERENCE §5.4).
        """
        state = start
        states, actions = [start], [torch.zeros(start["deter"].shape[0], self.action_dim, device=start["deter"].device)]
        for _ in range(horizon):
            action = policy(self.get_feat(state))  # (N, A)
            state = self.img_step(state, action, sample)
            states.append(state)
            actions.append(action.float())
        return stack_states(states), torch.stack(actions, 1)

    def imagine_actions(self, start: State, actions: Tensor, sample: bool = True) -> State:
        """Open-loop prior rollout: start (N, ...), actions (N, L, A) -> states (N, L, ...) after each action."""
        assert actions.shape[0] == start["deter"].shape[0] and actions.shape[-1] == self.action_dim, actions.shape
        state, states = start, []
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t], sample)
            states.append(state)
        return stack_states(states)


def stack_states(states: list[State]) -> State:
    """List over time of states (B, ...) -> one state (B, T, ...)."""
    return {key: torch.stack([state[key] for state in states], 1) for key in states[0]}


def flatten_time(state: State) -> State:
    """(B, T, ...) -> (B·T, ...) for every entry of a state."""
    return {key: value.reshape(-1, *value.shape[2:]) for key, value in state.items()}


def kl_balance_loss(
    post_logit: Tensor, prior_logit: Tensor, free: float = 1.0, balance: float = 0.8, forward: bool = False
) -> tuple[Tensor, Tensor]:
    """KL balancing with free bits on the batch-mean KL (DreamerV2 §2 "KL balancing", REFERENCE §5.3).

    logits: (B, T, S, K). With forward=False the KL is KL(post ‖ prior) and
    loss = (1-balance)·max(mean KL(post ‖ sg(prior)), free) + balance·max(mean KL(sg(post) ‖ prior), free):
    `balance` of the gradient moves the prior towards the posterior. Returns (loss, KL per step (B, T)).
    """
    lhs, rhs = (prior_logit, post_logit) if forward else (post_logit, prior_logit)
    lhs_weight = balance if forward else 1.0 - balance
    value = categorical_kl(lhs, rhs)  # (B, T)
    lhs_loss = categorical_kl(lhs, rhs.detach()).mean().clamp(min=free)
    rhs_loss = categorical_kl(lhs.detach(), rhs).mean().clamp(min=free)
    return lhs_weight * lhs_loss + (1.0 - lhs_weight) * rhs_loss, value
