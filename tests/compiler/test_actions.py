"""Action spaces and pass application: all 124 CompilerGym flags run on real programs and keep the IR valid."""

from __future__ import annotations

import pytest

import compilerdream.compiler as cc
from compilerdream.compiler.spaces import ACTION_SPACE_NAMES, action_space, pass_flags

from .helpers import count_instructions, random_actions, verifier_message

ACTION_SPACE_SIZES = {
    "NoLimit": 124,
    "Autophase": 42,
    "SubseqSingleStep": 61,
    "SubseqAutophase": 74,
    "SubseqAutophaseTruncated": 74,
}


def test_action_space_sizes_match_compilerdream():
    """The five spaces have CompilerDream's sizes (REFERENCE §2.2/§2.5) and NoLimit is CompilerGym's flag order."""
    assert set(ACTION_SPACE_NAMES) == set(ACTION_SPACE_SIZES)
    for name, n in ACTION_SPACE_SIZES.items():
        space = action_space(name)
        assert space.n == n == len(space.flags) == len(space.names)
    nolimit = action_space("NoLimit")
    assert nolimit.flags == tuple(f.flag for f in pass_flags())
    assert nolimit.flags[0] == "-add-discriminators" and nolimit.flags[-1] == "-mergereturn"
    assert nolimit.flags.index("-mem2reg") == 103 and nolimit.flags.index("-instcombine") == 53


def test_autophase_space_lists_functionattrs_twice():
    """CompilerDream's Autophase space has -functionattrs at indices 7 and 8 (REFERENCE §7.3): 41 distinct passes."""
    space = action_space("Autophase")
    assert space.flags[7] == space.flags[8] == "-functionattrs"
    assert len(set(space.flags)) == 41


def test_subsequence_spaces_hold_34_sequences_then_40_single_passes():
    """SubseqAutophase(-Truncated): 34 multi-pass PosetRL sub-sequences followed by 40 single passes."""
    for name in ("SubseqAutophase", "SubseqAutophaseTruncated"):
        space = action_space(name)
        assert all(len(e) >= 1 for e in space.entries[:34])
        assert sum(len(e) > 1 for e in space.entries[:34]) >= 30
        assert all(len(e) == 1 for e in space.entries[34:]) and len(space.entries[34:]) == 40


@pytest.mark.parametrize("space_name", ["NoLimit", "SubseqAutophase"])
def test_to_string_from_string_round_trip(space_name):
    """from_string(to_string(actions)) recovers the pipelines of a seeded random action list.

    Actions are recovered up to aliases: flags LLVM 19 maps to one pass (-barrier and
    -loop-reroll are no-ops, -constprop is instsimplify, -die is dce, -ipconstprop is ipsccp)
    print identically, and sub-sequences may be recovered as other sub-sequences.
    """
    space = action_space(space_name)
    actions = random_actions(space.n, 30, seed=3)
    recovered = space.from_string(space.to_string(actions))
    assert [p for a in recovered for p in space.pipelines(a)] == [p for a in actions for p in space.pipelines(a)]
    if space_name == "NoLimit":
        aliases = {7: 7, 70: 7, 16: 52, 52: 52, 25: 24, 24: 24, 45: 46, 46: 46}
        assert [aliases.get(a, a) for a in recovered] == [aliases.get(a, a) for a in actions]


@pytest.mark.parametrize("program", ["qsort", "statemachine", "shapes", "csmith_94"])
def test_every_action_runs_and_module_verifies(program, program_bitcode):
    """Each of the 124 actions, on the -O0-style module and after mem2reg, runs without error and leaves valid IR."""
    env = cc.make(
        "llvm-v0", benchmark=program_bitcode[program], observation_space="IrInstructionCount", isolation="none"
    )
    try:
        for prelude in ([], ["-mem2reg"]):
            for action in range(124):
                env.reset()
                for flag in prelude:
                    env.step(flag)
                obs, _, terminated, truncated, info = env.step(action)
                name = env.action_space.flags[action]
                assert not terminated and not truncated and "error_type" not in info, (name, info)
                assert obs >= 0
                assert verifier_message(env) == "", f"{name} after {prelude} broke the module: {verifier_message(env)}"
    finally:
        env.close()


def test_all_actions_in_process_worker_match_in_process(program_bitcode):
    """All 124 actions in one episode in the default (process-isolated) worker: valid IR, same count as in-process."""
    actions = list(range(124))
    counts = {}
    for isolation in ("process", "none"):
        with cc.make("llvm-v0", benchmark=program_bitcode["crc32"], isolation=isolation) as env:
            env.reset()
            _, _, terminated, _, info = env.multistep(actions)
            assert not terminated, info
            assert verifier_message(env) == ""
            assert env.validate().okay
            counts[isolation] = int(env.observation["IrInstructionCount"])
    assert counts["process"] == counts["none"]


def test_flag_index_and_pipeline_string_are_the_same_action(program_bitcode):
    """step(103), step('-mem2reg') and step('mem2reg') (a pipeline string) give the same module."""
    sha = []
    for action in (103, "-mem2reg", "mem2reg", "function(mem2reg)"):
        with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
            env.reset()
            env.step(action)
            sha.append(env.observation["IrSha1"])
            assert env.actions == [action]
    assert len(set(sha)) == 1


def test_subsequence_action_applies_all_its_passes(program_bitcode):
    """One SubseqAutophase action applies its whole PosetRL sub-sequence, equal to the passes given one by one."""
    space = action_space("SubseqAutophase")
    action = max(range(34), key=lambda a: len(space.entries[a]))
    flags = [pass_flags()[i].flag for i in space.entries[action]]
    assert len(flags) > 1 and space.passes([action]) == flags  # the space-free form of the action
    assert space.passes(["default<Oz>", action, 0]) == ["default<Oz>", *flags, *space.passes([0])]
    with cc.make(
        "llvm-v0", benchmark=program_bitcode["matmul"], action_space="SubseqAutophase", isolation="none"
    ) as env:
        env.reset()
        env.step(action)
        whole = int(env.observation["IrInstructionCount"])
        assert env.actions == [action]
        env.reset(action_space="NoLimit")
        env.multistep(flags)
        assert int(env.observation["IrInstructionCount"]) == whole


def test_same_actions_same_result(program_bitcode):
    """Determinism: the same seeded action list on two fresh envs gives byte-identical bitcode."""
    actions = random_actions(124, 40, seed=11)
    bitcode = []
    for _ in range(2):
        with cc.make("llvm-v0", benchmark=program_bitcode["csmith_94"], isolation="none") as env:
            env.reset()
            env.multistep(actions)
            bitcode.append(env.observation["Bitcode"])
    assert bitcode[0] == bitcode[1]
    assert count_instructions(bitcode[0]) > 0


def test_action_had_no_effect_flag(program_bitcode):
    """mem2reg changes fresh -O0 code; applying it again reports action_had_no_effect."""
    with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        env.reset()
        assert env.step("-mem2reg")[4]["action_had_no_effect"] is False
        assert env.step("-mem2reg")[4]["action_had_no_effect"] is True
