"""World model: encoder, RSSM, decoder, reward and discount heads trained by ELBO-style losses (REFERENCE §5.3)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from compilerdream.agent.networks import Decoder, DistHead, Encoder, Optimizer, Precision, mlp_options, vector_keys
from compilerdream.agent.rssm import RSSM, State, kl_balance_loss


def optimizer_from_config(
    name: str, cfg: Mapping[str, Any], prefix: str, modules: list[nn.Module], precision: Precision
) -> Optimizer:
    """Adam for `modules` with `<prefix>.{lr,eps,clip,wd}` from the flat config (REFERENCE §5.1)."""
    return Optimizer(
        name,
        itertools.chain.from_iterable(module.parameters() for module in modules),
        lr=float(cfg[f"{prefix}.lr"]),
        eps=float(cfg[f"{prefix}.eps"]),
        clip=float(cfg[f"{prefix}.clip"]),
        wd=float(cfg[f"{prefix}.wd"]),
        precision=precision,
    )


class WorldModel(nn.Module):
    """Learns the latent dynamics and the reward/discount of the compiler environment (DreamerV2 §2, REFERENCE §5.3).

    Args:
        obs_space: observation key -> shape, in the env's order (decides the encoder's concatenation order).
        num_actions: size of the one-hot action.
        cfg: flat config with dotted keys (see `compilerdream.agent.AGENT_DEFAULTS`).
        precision: autocast / loss-scaling policy shared by the whole agent.
    """

    def __init__(self, obs_space: Mapping[str, tuple], num_actions: int, cfg: Mapping[str, Any], precision: Precision):
        super().__init__()
        self.precision = precision
        self.encoder = Encoder(
            obs_space, cfg["encoder.mlp_keys"], **mlp_options(cfg, "encoder", "mlp_layers", "mlp_units")
        )
        self.rssm = RSSM(
            embed_dim=self.encoder.out_dim,
            action_dim=num_actions,
            deter=int(cfg["rssm.deter"]),
            stoch=int(cfg["rssm.stoch"]),
            discrete=int(cfg["rssm.discrete"]),
            hidden=int(cfg["rssm.hidden"]),
            act=cfg["rssm.act"],
            norm=cfg["rssm.norm"],
            unimix=float(cfg["rssm.unimix"]),
        )
        feat_dim = self.rssm.feat_dim
        decoded = {key: int(obs_space[key][0]) for key in vector_keys(obs_space, cfg["decoder.mlp_keys"])}
        self.decoder = Decoder(feat_dim, decoded, **mlp_options(cfg, "decoder", "mlp_layers", "mlp_units"))
        self.reward_head = DistHead(feat_dim, cfg["reward_head.dist"], **mlp_options(cfg, "reward_head"))
        self.discount_head = DistHead(feat_dim, "binary", **mlp_options(cfg, "discount_head"))

        self.loss_scales = {key: float(cfg[f"loss_scales.{key}"]) for key in ("kl", "reward", "discount", *decoded)}
        self.kl_free = float(cfg["kl.free"])
        self.kl_balance = float(cfg["kl.balance"])
        self.kl_forward = bool(cfg["kl.forward"])
        self.grad_heads = set(cfg["grad_heads"])
        unknown = self.grad_heads - {"decoder", "reward", "discount"}
        if unknown:
            raise ValueError(f"grad_heads {sorted(unknown)} are not heads; expected decoder, reward or discount")
        self.discount = float(cfg["discount"])
        self.discount_emph = float(cfg["discount_emph"])
        self.to(precision.device)  # before the optimiser, so that it holds the parameters on their final device
        self.model_opt = optimizer_from_config(
            "model",
            cfg,
            "model_opt",
            [self.encoder, self.rssm, self.decoder, self.reward_head, self.discount_head],
            precision,
        )

    def discount_target(self, is_terminal: Tensor) -> Tensor:
        """(1 - is_terminal)·discount: the soft target of the discount head (REFERENCE §5.2)."""
        return (1.0 - is_terminal.float()) * self.discount

    def loss(self, batch: Mapping[str, Tensor], state: State | None = None) -> tuple[Tensor, State, dict]:
        """World-model loss of one batch of (B, T) sequences; returns (loss, posterior states, metrics)."""
        with self.precision.autocast():
            embed = self.encoder(batch)  # (B, T, E)
            post, prior = self.rssm.observe(embed, batch["action"], batch["is_first"], state)
            feat = self.rssm.get_feat(post)  # (B, T, F)
            assert feat.shape[:2] == embed.shape[:2], (feat.shape, embed.shape)
            kl_loss, kl_value = kl_balance_loss(
                post["logit"], prior["logit"], self.kl_free, self.kl_balance, self.kl_forward
            )
            losses = {"kl": kl_loss}

            def head_input(name: str) -> Tensor:
                return feat if name in self.grad_heads else feat.detach()

            for key, dist in self.decoder(head_input("decoder")).items():
                losses[key] = -dist.log_prob(batch[key]).mean()
            # Targets stay fp32: the distributions compute in fp32 even under autocast (REFERENCE §7.15).
            losses["reward"] = -self.reward_head(head_input("reward")).log_prob(batch["reward"]).mean()
            is_terminal = batch["is_terminal"].float()
            discount_weight = 1.0 + (self.discount_emph - 1.0) * is_terminal  # discount_emph on terminal steps
            discount_logp = self.discount_head(head_input("discount")).log_prob(self.discount_target(is_terminal))
            losses["discount"] = -(discount_weight * discount_logp).mean()
            model_loss = sum(self.loss_scales[key] * value for key, value in losses.items())

        metrics = {f"{key}_loss": value.detach() for key, value in losses.items()}
        metrics["model_kl"] = kl_value.mean().detach()
        metrics["prior_ent"] = self.rssm.get_dist(prior).entropy().sum(-1).mean().detach()
        metrics["post_ent"] = self.rssm.get_dist(post).entropy().sum(-1).mean().detach()
        return model_loss, post, metrics

    def train_step(self, batch: Mapping[str, Tensor], state: State | None = None) -> tuple[State, State, dict]:
        """One Adam step on the world model (REFERENCE §5.3).

        batch: tensors (B, T, ...) on the model's device. state: posterior state (B, ...) to continue from, or None to
        start every row from zeros. Returns (posterior (B, T, ...) detached, last posterior (B, ...), metrics).
        """
        model_loss, post, metrics = self.loss(batch, state)
        metrics.update(self.model_opt.step(model_loss))
        post = {key: value.detach() for key, value in post.items()}
        last_state = {key: value[:, -1] for key, value in post.items()}
        return post, last_state, metrics
