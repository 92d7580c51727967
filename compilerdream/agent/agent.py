"""The CompilerDream agent: world model + actor-critic behind a numpy interface (REFERENCE §5, DreamerV3 §2)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from compilerdream.agent.behavior import ActorCritic
from compilerdream.agent.networks import Precision
from compilerdream.agent.rssm import State
from compilerdream.agent.world_model import WorldModel

ArrayLike = Union[np.ndarray, Tensor]
PolicyState = tuple[State, Tensor]  # (posterior latent (B, ...), previous action (B, A))
STEP_KEYS = ("action", "reward", "is_first", "is_terminal")  # is_last is not needed by the losses
POLICY_MODES = ("explore", "train", "eval")


def add_action_noise(action: Tensor, amount: float) -> Tensor:
    """With probability `amount` replace the one-hot action by a uniform one: sample from amount/A + (1-amount)·a."""
    if amount <= 0.0:
        return action
    probs = amount / action.shape[-1] + (1.0 - amount) * action.detach().float()
    return F.one_hot(torch.multinomial(probs, 1).squeeze(-1), action.shape[-1]).float()


def metrics_to_floats(metrics: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Scalar tensors to floats with one device-to-host copy (one sync on a GPU instead of one per metric)."""
    names = [key for key, value in metrics.items() if isinstance(value, Tensor)]
    values = torch.stack([metrics[key].detach().float().reshape(()) for key in names]).tolist() if names else []
    out = {key: float(value) for key, value in metrics.items() if not isinstance(value, Tensor)}
    out.update(zip(names, values))
    return {key: out[key] for key in metrics}


class Agent:
    """DreamerV3-style agent picking LLVM passes (REFERENCE §5): `policy` to act, `train` to learn.

    Args:
        obs_space: observation key -> shape in the env's order, e.g. {"autophase": (56,), "action_histogram": (42,)}.
            Scalar entries (reward, is_first, ...) may be listed; they are not encoded.
        num_actions: size of the one-hot action space.
        config: flat mapping with dotted keys; must provide every key of `compilerdream.agent.AGENT_DEFAULTS`.
        device: "cpu" or "cuda" (a torch.device works too). On CPU the precision is always fp32.
    """

    def __init__(
        self,
        obs_space: Mapping[str, Sequence[int]],
        num_actions: int,
        config: Mapping[str, Any],
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.obs_space = {key: tuple(int(size) for size in shape) for key, shape in obs_space.items()}
        self.num_actions = int(num_actions)
        self.precision = Precision(self.device, config["precision"])
        self.world_model = WorldModel(self.obs_space, self.num_actions, config, self.precision)
        self.behavior = ActorCritic(self.world_model.rssm.feat_dim, self.num_actions, config, self.precision)
        self.expl_noise = float(config["expl_noise"])
        self.eval_noise = float(config["eval_noise"])
        self.eval_deter = bool(config["eval_deter"])
        self.eval_state_mean = bool(config["eval_state_mean"])
        self.obs_keys = list(dict.fromkeys(self.world_model.encoder.keys + list(self.world_model.decoder.heads)))

    # ---------------------------------------------------------------- acting

    @torch.no_grad()
    def policy(
        self, obs: Mapping[str, ArrayLike], state: PolicyState | None = None, mode: str = "train"
    ) -> tuple[np.ndarray, PolicyState]:
        """Choose one-hot actions (B, A) for a batch of observations (B, ...) (REFERENCE §5.4 "Acting").

        "explore"/"train" sample the slow actor and add `expl_noise`; "eval" takes its argmax when `eval_deter` and
        adds `eval_noise`. The posterior latent is its mode when `eval_state_mean`, else a sample. Pass back the
        returned state on the next call; rows whose obs["is_first"] is set restart from the zero state.
        """
        if mode not in POLICY_MODES:
            raise ValueError(f"policy mode must be one of {POLICY_MODES}, got {mode!r}")
        inputs = self._to_tensors(obs, self.world_model.encoder.keys)
        batch = next(iter(inputs.values())).shape[0]
        if state is None:
            state = (
                self.world_model.rssm.initial(batch, self.device),
                torch.zeros(batch, self.num_actions, device=self.device),
            )
        latent, prev_action = state
        is_first = (
            self._to_tensors(obs, ["is_first"])["is_first"]
            if "is_first" in obs
            else torch.zeros(batch, device=self.device)
        )
        with self.precision.autocast():
            embed = self.world_model.encoder(inputs)  # (B, E)
            latent, _ = self.world_model.rssm.obs_step(
                latent, prev_action, embed, is_first, sample=not self.eval_state_mean
            )
            dist = self.behavior.acting_actor()(self.world_model.rssm.get_feat(latent))
        if mode == "eval":
            action = add_action_noise(dist.mode() if self.eval_deter else dist.sample(), self.eval_noise)
        else:
            action = add_action_noise(dist.sample(), self.expl_noise)
        action = action.detach().float()
        return action.cpu().numpy(), (latent, action)

    # -------------------------------------------------------------- learning

    def train(self, batch: Mapping[str, ArrayLike], state: State | None = None) -> tuple[State, dict[str, float]]:
        """One world-model update and one actor-critic update on a batch of (B, T) sequences (REFERENCE §5.3-5.4).

        batch: the obs keys plus `action` (B, T, A; zeros at reset), `reward`, `is_first`, `is_terminal`
        (B, T). state: give the last returned state only when this batch's rows continue the previous batch's rows;
        by default every row starts from zeros (fixes REFERENCE §5.7/§7 carry-over into unrelated rows).
        Returns (last posterior state (B, ...), metrics as floats).
        """
        tensors = self._to_tensors(batch, [*self.obs_keys, *STEP_KEYS])
        batch_size, length = tensors["reward"].shape
        for key, value in tensors.items():
            assert value.shape[:2] == (batch_size, length), f"batch[{key!r}] has shape {tuple(value.shape)}"
        post, last_state, metrics = self.world_model.train_step(tensors, state)
        metrics.update(self.behavior.train_step(self.world_model, post, tensors["is_terminal"]))
        return last_state, metrics_to_floats(metrics)

    # ---------------------------------------------------------- value prediction

    @torch.no_grad()
    def imagine_sequence(
        self,
        obs: Mapping[str, ArrayLike],
        actions: Sequence[ArrayLike] | ArrayLike,
        state_mean: bool | None = None,
        decode: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Predicted rewards of applying `actions` (L one-hot vectors) to the program observed in `obs` (§4.3).

        obs holds one unbatched observation. Its posterior is one step from the zero state with is_first=1 (the mode
        when `state_mean`, default `eval_state_mean`); then the prior is rolled open-loop, taking the mode of each
        latent. Returns the reward-head mean at imagined steps t = 1..L, shape (L,), and with `decode` also the
        decoder means {key: (L, size)}.
        """
        state_mean = self.eval_state_mean if state_mean is None else state_mean
        inputs = {key: value[None] for key, value in self._to_tensors(obs, self.world_model.encoder.keys).items()}
        action_seq = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.device)
        action_seq = action_seq.reshape(1, -1, self.num_actions)  # (1, L, A)
        if action_seq.shape[1] == 0:
            empty = {
                key: np.zeros((0, head.out_features), np.float32)
                for key, head in self.world_model.decoder.heads.items()
            }
            return (np.zeros(0, np.float32), empty) if decode else np.zeros(0, np.float32)
        with self.precision.autocast():
            embed = self.world_model.encoder(inputs)  # (1, E)
            start = self.world_model.rssm.initial(1, self.device)
            zero_action = torch.zeros(1, self.num_actions, device=self.device)
            first = torch.ones(1, device=self.device)
            post, _ = self.world_model.rssm.obs_step(start, zero_action, embed, first, sample=not state_mean)
            states = self.world_model.rssm.imagine_actions(post, action_seq, sample=False)  # (1, L, ...)
            feat = self.world_model.rssm.get_feat(states)  # (1, L, F)
            rewards = self.world_model.reward_head(feat).mean()[0]  # (L,)
            decoded = {key: dist.mean()[0] for key, dist in self.world_model.decoder(feat).items()}
        rewards_np = rewards.float().cpu().numpy()
        if decode:
            return rewards_np, {key: value.float().cpu().numpy() for key, value in decoded.items()}
        return rewards_np

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Weights, slow targets, percentile EMAs, update counter, optimiser and loss-scaler states."""
        return {
            "world_model": self.world_model.state_dict(),
            "behavior": self.behavior.state_dict(),
            "model_opt": self.world_model.model_opt.state_dict(),
            "actor_opt": self.behavior.actor_opt.state_dict(),
            "critic_opt": self.behavior.critic_opt.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.world_model.load_state_dict(state["world_model"])
        self.behavior.load_state_dict(state["behavior"])
        self.world_model.model_opt.load_state_dict(state["model_opt"])
        self.behavior.actor_opt.load_state_dict(state["actor_opt"])
        self.behavior.critic_opt.load_state_dict(state["critic_opt"])

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically: a temporary file beside `path`, then `os.replace`."""
        path = os.fspath(path)
        tmp_path = f"{path}.tmp{os.getpid()}"
        try:
            torch.save(self.state_dict(), tmp_path)
            os.replace(tmp_path, path)
        finally:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by `save` (tensors are mapped onto this agent's device)."""
        self.load_state_dict(torch.load(os.fspath(path), map_location=self.device, weights_only=True))

    # --------------------------------------------------------------- helpers

    def _to_tensors(self, data: Mapping[str, ArrayLike], keys: Sequence[str]) -> dict[str, Tensor]:
        missing = [key for key in keys if key not in data]
        if missing:
            raise KeyError(f"missing input keys {missing}; got {sorted(data)}")
        return {
            key: torch.as_tensor(
                np.asarray(data[key]) if not isinstance(data[key], Tensor) else data[key], device=self.device
            ).float()
            for key in keys
        }
