"""Tests of compilerdream/config.py and configs.yaml (REFERENCE.md §1.1, §5.1)."""

from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path

import pytest

from compilerdream import config as cfg
from compilerdream.config import Config, ConfigError, load_blocks, load_configs, main_parse, parse_flags

REPO_ROOT = Path(__file__).resolve().parents[1]

REFERENCE_BLOCKS = {
    "compilergym": {
        "task": "compilergym_npb",
        "encoder.mlp_keys": ".*",
        "encoder.cnn_keys": "$^",
        "decoder.mlp_keys": ".*",
        "decoder.cnn_keys": "$^",
        "grad_heads": ["decoder", "reward"],
        "replay.minlen": 1,
        "replay.maxlen": 45,
        "replay.dreamsmooth": 0.6,
        "dataset.batch": 50,
        "dataset.length": 50,
        "eval_every": 2000,
        "log_every": 500,
        "prefill": 500,
        "pretrain": 100,
        "train_every": 5,
        "eval_deter": True,
        "max_return_limit": 5.0,
        "max_reward_limit": 3.0,
        "time_limit": 45,
        "eval_eps": 50,
        "action_mask": False,
        "clip_rewards": "identity",
        "expl_noise": 0.05,
        "rssm.hidden": 1024,
        "rssm.deter": 1024,
        "rssm.discrete": 32,
        "rssm.stoch": 32,
        ".*\\.norm$": "layer",
        "model_opt.lr": 2e-4,
        "actor_opt.lr": 4e-5,
        "critic_opt.lr": 1e-4,
        ".*\\.wd$": 1e-5,
        "loss_scales.kl": 0.1,
        "loss_scales.reward": 100.0,
        "loss_scales.discount": 5.0,
        "loss_scales.autophase": 100.0,
        "loss_scales.action_histogram": 10.0,
        "loss_scales.instcount": 1.0,
        "kl.free": 1.0,
        "ent_free": 2.0,
        "discount_emph": 1.0,
    },
    "compilergym_dv3": {
        "reward_head.dist": "disc",
        "critic.dist": "disc",
        "loss_scales.reward": 1.0,
        "reward_perc": True,
        "reward_perc_params.momentum": 0.99,
        "reward_perc_params.perclo": 0.05,
        "reward_perc_params.perchi": 0.95,
        "rssm.unimix": 0.01,
        "actor.unimix": 0.01,
        ".*\\.act$": "silu",
        ".*\\.norm$": "layer",
        "model_opt.lr": 1e-4,
        "actor_opt.lr": 3e-5,
        "critic_opt.lr": 3e-5,
        "actor_ent": 3e-4,
    },
    "test": {"test_only": True, "test_interval": 1, "enable_test": True},
    "coreset_train": {
        "compilergym.act_space": "NoLimit",
        # Not in the reference: the shipped LLVM-19 coreset has sequences that start from -Oz, which
        # the agent imagines as the -Oz-continue action (--coreset nvp50 needs no such action).
        "compilergym.oz_continue": True,
        "coreset_mode": True,
        "reduction_style": "coreset",
        "coreset_enumerate_test": True,
        "test_dataset": "coreset_nvp_zeroshot",
        "enable_test": True,
        "test_interval": 1,
        "test_eps": 11,
        "loss_scales.reward": 100.0,
    },
    "coreset_test": {
        "compilergym.act_space": "NoLimit",
        "compilergym.oz_continue": True,  # as in coreset_train
        "coreset_mode": True,
        "reduction_style": "coreset",
        "coreset_enumerate_test": True,
        "test_dataset": "coreset_nvp_zeroshot",
        "test_eps": 184,
        "test_only": True,
        "test_interval": 1,
        "enable_test": True,
        "eval_state_mean": True,
    },
    "cbench_train": {"task": "compilergym_cbench22", "test_dataset": "cbench", "test_eps": 23},
    "cbench_train_nolimit": {
        "task": "compilergym_cbench22",
        "test_dataset": "cbench",
        "test_eps": 23,
        "compilergym.act_space": "NoLimit",
    },
    "instcnt_train": {"loss_scales.instcount": 100.0, "compilergym.abs_inst_obs": True},
    "maxstep_200": {"compilergym.max_step": 200, "time_limit": 200, "replay.maxlen": 200, "prefill": 2800},
}

REQUIRED_DEFAULT_KEYS = """
logdir load_logdir seed task envs envs_parallel steps stop_steps precision replay.capacity replay.minlen
replay.maxlen replay.prioritize_ends replay.dreamsmooth dataset.batch dataset.length expl_until train_every
train_steps prefill pretrain eval_every log_every eval_eps test_eps test_dataset test_interval enable_test
enable_val test_only no_eval save_all_models coreset_mode reduction_style coreset_enumerate_test
eval_state_mean eval_deter eval_noise expl_noise max_return_limit max_reward_limit time_limit action_mask
clip_rewards grad_heads discount discount_lambda imag_horizon actor_ent ent_free slow_target slow_target_update
slow_target_fraction reward_perc discount_emph actor_grad
rssm.ensemble rssm.hidden rssm.deter rssm.stoch rssm.discrete rssm.act rssm.norm rssm.std_act rssm.min_std rssm.unimix
encoder.mlp_keys encoder.cnn_keys encoder.act encoder.norm encoder.mlp_layers encoder.mlp_units
decoder.mlp_keys decoder.cnn_keys decoder.act decoder.norm decoder.mlp_layers decoder.mlp_units
reward_head.layers reward_head.units reward_head.act reward_head.norm reward_head.dist
discount_head.layers discount_head.units discount_head.act discount_head.norm discount_head.dist
actor.layers actor.units actor.act actor.norm actor.dist actor.temp actor.unimix
critic.layers critic.units critic.act critic.norm critic.dist
loss_scales.kl loss_scales.reward loss_scales.discount loss_scales.autophase loss_scales.action_histogram
loss_scales.instcount kl.free kl.forward kl.balance
model_opt.lr model_opt.eps model_opt.clip model_opt.wd actor_opt.lr actor_opt.eps actor_opt.clip actor_opt.wd
critic_opt.lr critic_opt.eps critic_opt.clip critic_opt.wd
reward_perc_params.momentum reward_perc_params.perclo reward_perc_params.perchi
compilergym.max_step compilergym.baseline_thre compilergym.leakiness compilergym.step_penalty
compilergym.rew_space compilergym.act_space compilergym.oz_act compilergym.null_act compilergym.abs_inst_obs
compilergym.rel_inst_obs compilergym.instc_list_obs compilergym.programl compilergym.has_shuffled
compilergym.mix_weight compilergym.step_timeout
device data_root search.seconds search.compilations search.p_random train_minutes
""".split()


@pytest.fixture(scope="module")
def defaults() -> Config:
    return load_configs([])


@pytest.fixture(scope="module")
def rl() -> Config:
    return load_configs(["compilergym", "compilergym_dv3"])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "configs.yaml"
    path.write_text(text)
    return path


# ---- configs.yaml contents -------------------------------------------------------------------


def test_defaults_have_every_reference_key(defaults: Config) -> None:
    missing = [key for key in REQUIRED_DEFAULT_KEYS if key not in defaults]
    assert not missing


def test_reference_default_values(defaults: Config) -> None:
    expected = {
        "logdir": "/dev/null",
        "seed": 0,
        "envs": 1,
        "envs_parallel": "none",
        "steps": 100_000_000,
        "stop_steps": 1_002_000,
        "precision": 16,
        "replay.capacity": 2_000_000,
        "replay.prioritize_ends": True,
        "replay.dreamsmooth": 0.0,
        "expl_until": 0,
        "train_steps": 1,
        "slow_target_update": 100,
        "imag_horizon": 15,
        "discount": 0.99,
        "discount_lambda": 0.95,
        "test_interval": 10,
        "test_eps": 324,
        "test_dataset": "suball",
        "reduction_style": "default",
        "compilergym.max_step": 45,
        "compilergym.rew_space": "IrInstructionCount",
        "compilergym.act_space": "Autophase",
        "compilergym.mix_weight": [1.0, 1.0, 1.0],
        "critic_opt.lr": 2e-4,
        "device": "auto",
        "data_root": "",
        "search.seconds": 60.0,
        "search.compilations": 0,
        "search.p_random": 0.05,
        "compilergym.step_timeout": 60.0,
    }
    assert {key: defaults[key] for key in expected} == expected
    assert isinstance(defaults["steps"], int) and isinstance(defaults["model_opt.lr"], float)


def test_named_blocks_have_exactly_the_reference_contents() -> None:
    blocks = load_blocks()
    for name, expected in REFERENCE_BLOCKS.items():
        flat = dict(cfg._flatten(blocks[name]))
        assert flat == expected, name
    assert {"defaults", "small", "tiny", "debug"} <= set(blocks)


def test_the_tiny_preset_is_half_of_small_and_trains_more_often() -> None:
    small = load_configs(["compilergym", "compilergym_dv3", "small"])
    tiny = load_configs(["compilergym", "compilergym_dv3", "tiny"])
    assert tiny["rssm.deter"] * 2 == small["rssm.deter"] and tiny["actor.units"] * 2 == small["actor.units"]
    assert tiny["train_every"] < small["train_every"] and tiny["precision"] == 32
    assert tiny["dataset.batch"] == small["dataset.batch"] and tiny["model_opt.lr"] == small["model_opt.lr"]


def test_effective_rl_recipe_matches_reference_5_1(rl: Config) -> None:
    expected = {
        "model_opt.lr": 1e-4,
        "actor_opt.lr": 3e-5,
        "critic_opt.lr": 3e-5,
        "loss_scales.reward": 1.0,
        "loss_scales.kl": 0.1,
        "loss_scales.discount": 5.0,
        "rssm.unimix": 0.01,
        "actor.unimix": 0.01,
        "actor.temp": 1.0,
        "encoder.act": "silu",
        "encoder.norm": "layer",
        "rssm.act": "silu",
        "critic.norm": "layer",
        "reward_head.dist": "disc",
        "critic.dist": "disc",
        "discount_head.dist": "binary",
        "replay.dreamsmooth": 0.6,
        "dataset.batch": 50,
        "dataset.length": 50,
        "model_opt.wd": 1e-5,
        "critic_opt.wd": 1e-5,
        "model_opt.eps": 1e-5,
        "model_opt.clip": 100.0,
        "kl.free": 1.0,
        "kl.balance": 0.8,
        "kl.forward": False,
        "actor_ent": 3e-4,
        "ent_free": 2.0,
        "discount_emph": 1.0,
        "reward_perc": True,
        "expl_noise": 0.05,
        "eval_deter": True,
        "grad_heads": ["decoder", "reward"],
        "encoder.mlp_layers": 4,
        "encoder.mlp_units": 400,
        "rssm.stoch": 32,
        "rssm.discrete": 32,
        "precision": 16,
        "clip_rewards": "identity",
        "max_return_limit": 5.0,
        "max_reward_limit": 3.0,
    }
    assert {key: rl[key] for key in expected} == expected
    assert rl["rssm.std_act"] == "sigmoid2"  # `.*\.act$` must not touch `std_act`


def test_coreset_train_keeps_dreamsmooth() -> None:
    config = load_configs(["compilergym", "compilergym_dv3", "coreset_train"])
    assert config["replay.dreamsmooth"] == 0.6 and config["loss_scales.reward"] == 100.0


def test_presets_compose(rl: Config) -> None:
    small = load_configs(["compilergym", "compilergym_dv3", "small"])
    assert (small["rssm.deter"], small["rssm.stoch"], small["dataset.batch"], small["precision"]) == (256, 16, 16, 32)
    debug = load_configs(["compilergym", "compilergym_dv3", "debug"])
    assert (debug["rssm.deter"], debug["actor.units"], debug["dataset.length"], debug["pretrain"]) == (16, 16, 8, 2)
    assert debug["encoder.norm"] == "layer"  # earlier blocks survive


def test_agent_defaults_exist_in_config(defaults: Config) -> None:
    try:
        agent = importlib.import_module("compilerdream.agent")
    except ImportError:
        pytest.skip("compilerdream.agent is not importable")
    agent_defaults = getattr(agent, "AGENT_DEFAULTS", None)
    if agent_defaults is None:
        pytest.skip("compilerdream.agent.AGENT_DEFAULTS is not defined yet")
    missing = [key for key in Config(agent_defaults) if key not in defaults]
    assert not missing
    # AGENT_DEFAULTS holds the values of the reference recipe; the composed config must agree, types included.
    rl = load_configs(["compilergym", "compilergym_dv3"])
    differ = {k: (v, rl[k]) for k, v in Config(agent_defaults).items() if rl[k] != v or type(rl[k]) is not type(v)}
    assert not differ


# ---- Config object -----------------------------------------------------------------------------


def test_config_is_flat_immutable_and_groups() -> None:
    config = Config({"a": {"b": 1, "c": [1.0, 2.0]}, "d": "x"})
    assert dict(config) == {"a.b": 1, "a.c": [1.0, 2.0], "d": "x"}
    assert config.a == Config({"b": 1, "c": [1.0, 2.0]}) and config.d == "x"
    with pytest.raises(AttributeError):
        config.d = "y"
    new = config.update({"a": {"b": 2}})
    assert (config["a.b"], new["a.b"]) == (1, 2)
    assert pickle.loads(pickle.dumps(new)) == new


@pytest.mark.parametrize("bad", [{"a": None}, {"a": []}, {"a": [1, "x"]}, {".*": 1}])
def test_bad_defaults_rejected(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Config(bad)


def test_merge_order_later_block_wins(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "defaults: {lr: 1.0, n: 1, name: a}\none: {lr: 2.0, n: 3}\ntwo: {lr: 1e-4}\n",
    )
    assert dict(load_configs(["one", "two"], path)) == {"lr": 1e-4, "n": 3, "name": "a"}
    assert dict(load_configs(["two", "one"], path)) == {"lr": 2.0, "n": 3, "name": "a"}


def test_yaml_exponent_floats_and_int_coercion(tmp_path: Path) -> None:
    path = _write(tmp_path, "defaults: {lr: 1.0, steps: 10, name: a}\nblk: {lr: 1e-4, steps: 1e6, name: 2e3}\n")
    raw = cfg._read_yaml(path)
    assert raw["blk"] == {"lr": 1e-4, "steps": 1e6, "name": 2e3}  # floats, not the strings of YAML 1.1
    config = load_configs(["blk"], path)
    assert config["steps"] == 1_000_000 and isinstance(config["steps"], int) and config["name"] == "2000.0"
    with pytest.raises(ConfigError, match=r"'steps' in block 'bad' expects int, got 1\.5"):
        load_configs(["bad"], _write(tmp_path, "defaults: {steps: 10}\nbad: {steps: 1.5}\n"))


def test_regex_key_in_block_and_cli(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "defaults:\n  enc: {norm: none, act: elu}\n  actor: {norm: none, act: elu}\n  normal: 1\n"
        "blk:\n  .*\\.norm$: layer\n",
    )
    config = load_configs(["blk"], path)
    assert (config["enc.norm"], config["actor.norm"], config["normal"]) == ("layer", "layer", 1)
    config = parse_flags(config, ["--.*\\.act$", "silu"])
    assert (config["enc.act"], config["actor.act"]) == ("silu", "silu")
    # re.match anchors at the start: `(norm)$` would match `enc.norm` with re.search, not here.
    with pytest.raises(ConfigError, match=r"Flag --\(norm\)\$ did not match any config keys"):
        parse_flags(config, ["--(norm)$", "x"])
    assert parse_flags(config, ["--(actor)", "x"])["actor.act"] == "x"


def test_unknown_key_in_block_names_block(tmp_path: Path) -> None:
    path = _write(tmp_path, "defaults: {a: 1}\nblk: {b: 2}\n")
    with pytest.raises(ConfigError, match=r"'b' in block 'blk'"):
        load_configs(["blk"], path)


def test_unknown_preset_lists_available() -> None:
    with pytest.raises(ConfigError) as info:
        load_configs(["compilergym", "nope"])
    message = str(info.value)
    assert "'nope'" in message and "compilergym_dv3" in message and "debug" in message


# ---- CLI parsing -------------------------------------------------------------------------------


def test_flag_syntaxes(defaults: Config) -> None:
    config = parse_flags(
        defaults,
        ["--seed", "3", "--model_opt.lr=3e-4", "--grad_heads", "decoder", "reward", "--compilergym.mix_weight=1,2,3"],
    )
    assert config["seed"] == 3 and config["model_opt.lr"] == 3e-4
    assert config["grad_heads"] == ["decoder", "reward"]
    assert config["compilergym.mix_weight"] == [1.0, 2.0, 3.0]
    assert parse_flags(defaults, ["--grad_heads", "decoder,reward"])["grad_heads"] == ["decoder", "reward"]


def test_int_coercion(defaults: Config) -> None:
    assert parse_flags(defaults, ["--steps", "1e6"])["steps"] == 1_000_000
    assert isinstance(parse_flags(defaults, ["--steps", "1e6"])["steps"], int)
    with pytest.raises(ConfigError, match=r"--seed expects int, got '1\.5'"):
        parse_flags(defaults, ["--seed", "1.5"])
    with pytest.raises(ConfigError, match=r"--seed expects int, got 'abc'"):
        parse_flags(defaults, ["--seed", "abc"])


def test_bool_and_float_coercion(defaults: Config) -> None:
    assert parse_flags(defaults, ["--enable_test", "True"])["enable_test"] is True
    assert parse_flags(defaults, ["--enable_test", "false"])["enable_test"] is False
    with pytest.raises(ConfigError, match="--enable_test expects bool, got 'maybe'"):
        parse_flags(defaults, ["--enable_test", "maybe"])
    with pytest.raises(ConfigError, match="expects bool"):
        parse_flags(defaults, ["--enable_test", "1"])
    assert parse_flags(defaults, ["--expl_noise", "-0.5"])["expl_noise"] == -0.5
    assert isinstance(parse_flags(defaults, ["--discount", "1"])["discount"], float)


def test_list_coercion_errors(defaults: Config) -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        parse_flags(defaults, ["--grad_heads", ""])
    with pytest.raises(ConfigError, match="non-empty"):
        parse_flags(defaults, ["--grad_heads", "a,,b"])
    with pytest.raises(ConfigError, match="expects float"):
        parse_flags(defaults, ["--compilergym.mix_weight", "1", "x"])


def test_cli_errors_name_the_flag(defaults: Config) -> None:
    with pytest.raises(ConfigError, match="Flag --foo did not match any config keys"):
        parse_flags(defaults, ["--foo", "1"])
    with pytest.raises(ConfigError, match="did you mean seed"):
        parse_flags(defaults, ["--sed", "1"])
    with pytest.raises(ConfigError, match="--seed expects a value"):
        parse_flags(defaults, ["--seed"])
    with pytest.raises(ConfigError, match="one int value, got 2"):
        parse_flags(defaults, ["--seed", "1", "2"])
    with pytest.raises(ConfigError, match="Unexpected argument 'stray'"):
        parse_flags(defaults, ["stray"])
    with pytest.raises(ConfigError, match="Invalid pattern"):
        parse_flags(defaults, ["--(", "1"])


def test_split_configs() -> None:
    assert cfg.split_configs(["--seed", "1"]) == (["defaults"], ["--seed", "1"])
    assert cfg.split_configs(["--configs", "a", "b", "--seed", "1"]) == (["a", "b"], ["--seed", "1"])
    assert cfg.split_configs(["--configs=a,b"]) == (["a", "b"], [])
    with pytest.raises(ConfigError):
        cfg.split_configs(["--configs"])


def test_main_parse_composes_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    config = main_parse(["--configs", "compilergym", "compilergym_dv3", "--seed", "4", "--.*\\.norm$", "none"])
    assert config["seed"] == 4 and config["encoder.norm"] == "none" and config["model_opt.lr"] == 1e-4
    with pytest.raises(SystemExit) as info:
        main_parse(["--seed", "abc"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--seed expects int, got 'abc'" in err
    with pytest.raises(SystemExit) as info:
        main_parse(["--configs", "bogus"])
    assert info.value.code == 2 and "bogus" in capsys.readouterr().err


def test_help_lists_every_key() -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as info:
        main_parse(["--configs", "compilergym", "--help"], description="Train.", stdout=out)
    assert info.value.code == 0
    text = out.getvalue()
    config = load_configs(["compilergym"])
    for key in config:
        assert f"--{key} " in text
    assert "--model_opt.lr" in text and "0.0002  (float)" in text and "(list[str])" in text


# ---- Files -------------------------------------------------------------------------------------


def test_config_file_found_at_repo_root_then_package(tmp_path: Path) -> None:
    assert cfg.find_config_file() == REPO_ROOT / "configs.yaml"
    assert cfg.default_config_paths()[1] == REPO_ROOT / "compilerdream" / "configs.yaml"
    packaged = _write(tmp_path, "defaults: {a: 1}\n")
    assert cfg.find_config_file(search=[tmp_path / "missing.yaml", packaged]) == packaged
    with pytest.raises(ConfigError, match="No configs.yaml"):
        cfg.find_config_file(search=[tmp_path / "missing.yaml"])


def test_save_load_roundtrip_atomic(rl: Config, tmp_path: Path) -> None:
    path = tmp_path / "run" / "config.yaml"
    rl.save(path)
    rl.save(path)  # overwrite
    assert Config.load(path) == rl
    assert os.listdir(path.parent) == ["config.yaml"]
