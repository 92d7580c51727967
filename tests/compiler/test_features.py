"""Observations: Autophase (56), InstCount (70) and their derived forms, checked by hand and by invariants."""

from __future__ import annotations

import numpy as np
import pytest

import compilerdream.compiler as cc
from compilerdream.compiler.spaces import autophase_feature_names, instcount_feature_names

from .helpers import random_actions

AUTOPHASE_NAMES_HEAD = ("BBNumArgsHi", "BBNumArgsLo", "onePred", "onePredOneSuc", "onePredTwoSuc")
AUTOPHASE_NAMES_TAIL = ("TotalBlocks", "TotalInsts", "TotalMemInst", "TotalFuncs", "ArgsPhi", "testUnary")

#: Autophase of tests/fixtures/programs/autophase_hand.ll, counted by hand with AUTOPHASE.md's rules.
#: Functions: @f (2 blocks), @g (3 blocks) and the declarations @ext and @unused.
HAND_AUTOPHASE = {
    "BBNumArgsLo": 1,  # g.d: one PHI with 2 incoming values
    "oneSuccessor": 1,  # g.a
    "twoPred": 3,  # f.join (br %c, %join, %join gives 2 pred entries), g.a (2 switch cases), g.d
    "twoPredOneSuc": 1,  # g.a
    "twoSuccessor": 1,  # f.entry (conditional br with identical targets still has 2 successors)
    "BB03Phi": 1,
    "BBNoPhi": 4,
    "BeginPhi": 1,
    "BranchCount": 2,  # f.entry's br and g.a's br; switch is not a BranchInst
    "returnInt": 1,  # call i32 @ext
    "CriticalCount": 5,  # both slots of f's br + all 3 slots of g's switch
    "NumEdges": 6,  # 2 + 3 + 1
    "const32Bit": 5,  # alloca's implicit i32 1, add's 1, xor's -1, switch cases 0 and 7
    "const64Bit": 2,  # phi's i64 0 and i64 5
    "numConstZeroes": 2,  # switch case i32 0, phi i64 0
    "numConstOnes": 2,  # alloca's implicit i32 1, add's 1 (i32 -1 is not one)
    "UncondBranches": 1,
    "binaryConstArg": 2,  # add, xor
    "NumAddInst": 1,
    "NumAllocaInst": 1,
    "BlockLow": 5,
    "NumBrInst": 2,
    "NumCallInst": 1,
    "NumLoadInst": 1,
    "NumPHIInst": 1,
    "NumRetInst": 2,
    "NumStoreInst": 1,
    "NumXorInst": 1,
    "TotalBlocks": 5,
    "TotalInsts": 13,  # f: alloca store br load add freeze xor call ret; g: switch br phi ret
    "TotalMemInst": 4,  # alloca, store, load, call
    "TotalFuncs": 4,  # declarations count
    "ArgsPhi": 2,
    "testUnary": 2,  # alloca, load; freeze is not unary in LLVM 10
}

HAND_INSTCOUNT = {
    "TotalInsts": 13, "TotalBlocks": 5, "TotalFuncs": 4, "Ret": 2, "Br": 2, "Switch": 1, "Add": 1, "Xor": 1,
    "Alloca": 1, "Load": 1, "Store": 1, "PHI": 1, "Call": 1, "Freeze": 1,
}  # fmt: skip


@pytest.fixture
def make_env():
    """Factory of in-process envs that are closed after the test."""
    made = []

    def make(benchmark, **kwargs):
        env = cc.make("llvm-v0", benchmark=benchmark, isolation="none", **kwargs)
        env.reset()
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def test_feature_name_files_have_compilergym_orders():
    """The name lists (data/*.txt) have 56 and 70 unique names in CompilerGym's order."""
    ap, ic = autophase_feature_names(), instcount_feature_names()
    assert len(ap) == len(set(ap)) == 56 and len(ic) == len(set(ic)) == 70
    assert ap[:5] == AUTOPHASE_NAMES_HEAD and ap[-6:] == AUTOPHASE_NAMES_TAIL
    assert ap.index("BranchCount") == 15 and ap.index("NumBrInst") == 32 and ap.index("TotalInsts") == 51
    assert ic[:6] == ("TotalInsts", "TotalBlocks", "TotalFuncs", "Ret", "Br", "Switch") and ic[-1] == "Freeze"


def test_observation_shapes_dtypes_and_spaces(make_env, program_bitcode):
    """Each observation has its declared shape and dtype and lies in its gymnasium space."""
    env = make_env(program_bitcode["qsort"])
    expected = {"Autophase": ((56,), np.int64), "InstCount": ((70,), np.int64), "InstCountNorm": ((69,), np.float32)}
    for name, (shape, dtype) in expected.items():
        value = env.observation[name]
        assert value.shape == shape and value.dtype == dtype, name
        env.observation_space = name
        assert env.observation_space.contains(value), name
    for name in ("IrInstructionCount", "IrInstructionCountO0", "IrInstructionCountO3", "IrInstructionCountOz"):
        assert isinstance(env.observation[name], np.int64), name
    assert list(env.observation["AutophaseDict"]) == list(autophase_feature_names())
    assert list(env.observation["InstCountDict"]) == [n + "Count" for n in instcount_feature_names()]
    assert list(env.observation["InstCountNormDict"]) == [n + "Density" for n in instcount_feature_names()[1:]]
    ir = env.observation["Ir"]
    assert isinstance(ir, str) and "define" in ir
    import hashlib

    assert env.observation["IrSha1"] == hashlib.sha1(ir.encode()).hexdigest()
    assert isinstance(env.observation["Bitcode"], bytes) and env.observation["Bitcode"][:2] == b"BC"


def test_dict_and_norm_forms_agree_with_vectors(make_env, program_bitcode):
    """AutophaseDict/InstCountDict hold the vectors' values; InstCountNorm = counts[1:] / counts[0] (float32)."""
    env = make_env(program_bitcode["statemachine"])
    env.multistep(["-mem2reg", "-simplifycfg"])
    autophase, instcount = env.observation["Autophase"], env.observation["InstCount"]
    assert list(env.observation["AutophaseDict"].values()) == autophase.tolist()
    assert list(env.observation["InstCountDict"].values()) == instcount.tolist()
    np.testing.assert_allclose(env.observation["InstCountNorm"], instcount[1:] / instcount[0], rtol=1e-6)
    np.testing.assert_allclose(
        list(env.observation["InstCountNormDict"].values()), instcount[1:] / instcount[0], rtol=1e-6
    )


@pytest.mark.parametrize("program", ["qsort", "matmul", "shapes", "csmith_94"])
def test_feature_invariants_along_random_episode(make_env, program_bitcode, program):
    """Hand-checkable identities between features hold on real modules after each of 15 seeded random actions."""
    env = make_env(program_bitcode[program])
    names = autophase_feature_names()
    for action in [None, *random_actions(124, 15, seed=len(program))]:
        if action is not None:
            env.step(action)
        ap = dict(zip(names, env.observation["Autophase"].tolist()))
        ic = dict(zip(instcount_feature_names(), env.observation["InstCount"].tolist()))
        count = int(env.observation["IrInstructionCount"])
        assert ap["BB03Phi"] + ap["BBHiPhi"] + ap["BBNoPhi"] == ap["TotalBlocks"] == ic["TotalBlocks"]
        assert ap["BeginPhi"] == ap["BB03Phi"] + ap["BBHiPhi"]
        assert ap["TotalInsts"] == count == ic["TotalInsts"]
        assert sum(list(ic.values())[3:]) == count
        assert ap["NumBrInst"] == ap["BranchCount"] == ic["Br"]
        assert ap["TotalFuncs"] == ic["TotalFuncs"]
        assert ap["BlockLow"] + ap["BlockMid"] <= ap["TotalBlocks"]
        assert ap["UncondBranches"] <= ap["NumBrInst"]
        assert ap["ArgsPhi"] >= ap["NumPHIInst"] == ic["PHI"]
        assert (
            ap["TotalMemInst"]
            == ic["GetElementPtr"] + ic["Load"] + ic["Store"] + ic["Call"] + ic["Invoke"] + ic["Alloca"]
        )
        for opcode in ("AShr", "Add", "Alloca", "And", "BitCast", "Call", "GetElementPtr", "ICmp", "LShr", "Load", "Mul",
                       "Or", "PHI", "Ret", "SExt", "Select", "Shl", "Store", "Sub", "Trunc", "Xor", "ZExt"):  # fmt: skip
            assert ap[f"Num{opcode}Inst"] == ic[opcode], opcode


def test_autophase_by_hand(make_env, program_bitcode):
    """Autophase of a hand-written module equals the vector counted by hand (all 56 entries)."""
    env = make_env(program_bitcode["autophase_hand"])
    expected = [HAND_AUTOPHASE.get(name, 0) for name in autophase_feature_names()]
    assert dict(zip(autophase_feature_names(), env.observation["Autophase"].tolist())) == dict(
        zip(autophase_feature_names(), expected)
    )


def test_instcount_by_hand(make_env, program_bitcode):
    """InstCount of the hand-written module: 3 totals (declarations count as functions) then opcode counts."""
    env = make_env(program_bitcode["autophase_hand"])
    got = dict(zip(instcount_feature_names(), env.observation["InstCount"].tolist()))
    assert got == {name: HAND_INSTCOUNT.get(name, 0) for name in instcount_feature_names()}
    assert int(env.observation["IrInstructionCount"]) == 13


def test_debug_info_does_not_change_features(make_env, program_bitcode, debug_bitcode):
    """A program compiled with -g has the same features as without: debug info is stripped at load."""
    for program in ("qsort", "shapes"):
        plain, debug = make_env(program_bitcode[program]), make_env(debug_bitcode[program])
        for env in (plain, debug):
            env.multistep(["-mem2reg", "-instcombine"])
        assert debug.observation["Autophase"].tolist() == plain.observation["Autophase"].tolist()
        assert debug.observation["InstCount"].tolist() == plain.observation["InstCount"].tolist()
        assert "!dbg" not in debug.observation["Ir"]
