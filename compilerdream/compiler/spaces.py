"""Action, observation and reward spaces of the LLVM environment (CompilerGym's names and orders)."""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np
from gymnasium import spaces

from .errors import ActionOutOfRangeError, UnknownNameError


def data_path(name: str):
    """Path of a data file shipped in compilerdream/compiler/data/."""
    return resources.files("compilerdream.compiler") / "data" / name


@dataclass(frozen=True)
class PassFlag:
    """One of CompilerGym's 124 LLVM flags and the LLVM 19 pipeline that replaces it."""

    index: int
    flag: str
    pipeline: str
    status: str
    note: str


@cache
def pass_flags() -> tuple[PassFlag, ...]:
    """The 124 CompilerGym flags in action order (data/llvm_passes.tsv)."""
    with data_path("llvm_passes.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    flags = tuple(
        PassFlag(int(r["index"]), r["compilergym_flag"], r["llvm19_pipeline"], r["status"], r.get("note") or "")
        for r in rows
    )
    assert [f.index for f in flags] == list(range(len(flags))) and len(flags) == 124, "llvm_passes.tsv is corrupt"
    return flags


@cache
def _flag_index() -> dict[str, int]:
    return {f.flag: f.index for f in pass_flags()}


def flag_to_index(flag: str) -> int:
    """Index of a CompilerGym flag ('-mem2reg' or 'mem2reg') in the 124-flag space."""
    key = flag if flag.startswith("-") else "-" + flag
    try:
        return _flag_index()[key]
    except KeyError:
        raise UnknownNameError(f"unknown pass flag '{flag}': not one of CompilerGym's 124 LLVM flags") from None


@cache
def _action_space_table() -> dict[str, list[list[int]]]:
    with data_path("action_spaces.json").open() as f:
        table = json.load(f)
    return {k: v for k, v in table.items() if not k.startswith("_")}


ACTION_SPACE_NAMES = ("NoLimit", "Autophase", "SubseqSingleStep", "SubseqAutophase", "SubseqAutophaseTruncated")


class ActionSpace(spaces.Discrete):
    """A named, discrete action space over CompilerGym's 124 flags.

    Each action is a list of flag indices applied as one step (a single flag for
    most spaces; PosetRL sub-sequences for the Subseq* spaces).
    """

    def __init__(self, name: str, entries: Sequence[Sequence[int]], seed: int | None = None):
        super().__init__(len(entries), seed=seed)
        self.name = name
        self.entries: tuple[tuple[int, ...], ...] = tuple(tuple(int(i) for i in e) for e in entries)
        all_flags = pass_flags()
        for e in self.entries:
            for i in e:
                if not 0 <= i < len(all_flags):
                    raise ValueError(f"action space {name}: flag index {i} out of range")
        self.flags: tuple[str, ...] = tuple(" ".join(all_flags[i].flag for i in e) for e in self.entries)
        self.names: tuple[str, ...] = tuple(f.lstrip("-").replace(" -", "+") for f in self.flags)

    def __repr__(self) -> str:
        return f"ActionSpace({self.name}, n={self.n})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ActionSpace) and other.name == self.name and other.entries == self.entries

    def __hash__(self) -> int:
        return hash((self.name, self.entries))

    def check(self, action) -> int:
        """Validate an action index (numpy ints accepted) and return it as int."""
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ActionOutOfRangeError(f"action must be an integer index into {self.name} (n={self.n}), got {action!r}")
        a = int(action)
        if not 0 <= a < self.n:
            raise ActionOutOfRangeError(f"action {a} is out of range for action space {self.name} (n={self.n})")
        return a

    def flag_indices(self, action) -> tuple[int, ...]:
        return self.entries[self.check(action)]

    def pipelines(self, action) -> list[str]:
        """LLVM 19 pipeline strings applied, in order, for one action."""
        flags = pass_flags()
        return [flags[i].pipeline for i in self.flag_indices(action)]

    def passes(self, actions: Sequence) -> list[str]:
        """The actions as CompilerGym flags, one per pass, valid in any action space.

        Strings (raw new-PM pipelines such as `default<Oz>`, or flags) are kept as
        they are. `env.multistep(space.passes(actions))` replays the actions in an
        env of any action space.
        """
        flags = pass_flags()
        out: list[str] = []
        for a in actions:
            if isinstance(a, str):
                out.append(a)
            else:
                out.extend(flags[i].flag for i in self.flag_indices(a))
        return out

    def to_string(self, actions: Sequence) -> str:
        """`opt` command line reproducing the actions (see env.commandline()); strings (a flag, or a
        pipeline such as `default<Oz>`) are taken as they are."""

        def pipelines(a) -> list[str]:
            if not isinstance(a, str):
                return self.pipelines(a)
            return [pass_flags()[flag_to_index(a)].pipeline] if a.strip().startswith("-") else [a.strip()]

        return commandline_for([p for a in actions for p in pipelines(a)])

    def from_string(self, commandline: str) -> list[int]:
        """Parse a command line written by `to_string` (or a CompilerGym `opt -flag ...` one) into actions."""
        # Flags that LLVM 19 runs as the same pipeline (-ipsccp/-ipconstprop, -dce/-die, ...)
        # print identically; compare them by one representative on both sides.
        flag_lists = [_alias_of(i) for i in parse_commandline_flags(commandline)]
        lookup = {tuple(_alias_of(i) for i in e): i for i, e in reversed(list(enumerate(self.entries)))}
        actions, k = [], 0
        # Greedy longest match so sub-sequence actions are recovered as one action.
        by_len = sorted(set(lookup), key=len, reverse=True)
        while k < len(flag_lists):
            for entry in by_len:
                if tuple(flag_lists[k : k + len(entry)]) == entry:
                    actions.append(lookup[entry])
                    k += len(entry)
                    break
            else:
                flag = pass_flags()[flag_lists[k]].flag
                raise UnknownNameError(f"flag '{flag}' in the command line is not an action of space {self.name}")
        return actions


@cache
def _alias_of(flag_index: int) -> int:
    """The lowest flag index whose pipeline is the same as `flag_index`'s."""
    target = canonical_pipeline(pass_flags()[flag_index].pipeline)
    return next(f.index for f in pass_flags() if canonical_pipeline(f.pipeline) == target)


@cache
def action_space(name: str) -> ActionSpace:
    """The action space named `name` (NoLimit, Autophase, SubseqSingleStep, SubseqAutophase, SubseqAutophaseTruncated)."""
    table = _action_space_table()
    if name not in table:
        raise UnknownNameError(f"unknown action space '{name}': choose one of {', '.join(table)}")
    return ActionSpace(name, table[name])


# ---------------------------------------------------------------------------
# Pipelines and command lines
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def canonical_pipeline(pipeline: str) -> str:
    """LLVM's own module-level spelling of `pipeline`; raises UnknownNameError if it does not parse.

    Each canonical pipeline is a complete module-level unit, so several joined with
    ',' run one after another over the whole module, exactly as separate steps do.
    """
    from ._core import canonical_pipeline as _canonical

    try:
        return _canonical(pipeline)
    except ValueError as exc:
        raise UnknownNameError(f"unknown pass or malformed pipeline '{pipeline}': {exc}") from None


#: Written between the pipelines of consecutive steps in a printed command line.
STEP_SEPARATOR = ",invalidate<all>,"

_PASSES_RE = re.compile(r"-passes=(?P<q>['\"]?)(?P<p>.*?)(?P=q)(?:\s|$)")


#: LLVM's named optimization pipelines (-O0 ... -Oz), printed by name in command lines.
_DEFAULT_PIPELINE_RE = re.compile(r"^default<O[0123sz]>$")


def printable_pipeline(pipeline: str) -> str:
    """`pipeline` as a command line prints it: its canonical spelling, except `default<Ox>` elements.

    LLVM's printed expansion of `default<Oz>` does not parse back to the same pipeline (opt-19
    on the expansion gives a different module on some programs), so those elements keep their
    name; each is a complete module pipeline, so the rest keep their canonical spelling.
    Raises UnknownNameError if `pipeline` does not parse.
    """
    canonical = canonical_pipeline(pipeline)
    parts = [part.strip() for part in split_pipeline(pipeline.strip())]
    if not any(_DEFAULT_PIPELINE_RE.match(part) for part in parts):
        return canonical
    return ",".join(part if _DEFAULT_PIPELINE_RE.match(part) else canonical_pipeline(part) for part in parts)


def commandline_for(
    pipelines: Sequence[str],
    input_name: str = "input.bc",
    output_name: str = "output.bc",
    strip_debug: bool = False,
    options: Sequence[str] = (),
) -> str:
    """An `opt` command that applies `pipelines` in order, as our engine does.

    `strip_debug` adds opt's `-strip-debug` (llvm::StripDebugInfo, as the engine does at
    load): needed for inputs with debug info, where e.g. insert-gcov-profiling acts
    only if llvm.dbg.cu is present. `options`: opt's own options that every pass ran under
    (an env's `compiler_options`, e.g. '-force-attribute=minsize'), written before -passes.
    """
    # The engine runs every pipeline with fresh analysis managers; opt shares one
    # cache across the whole -passes string, and cached analyses (e.g. SCEV after
    # licm) can change what later passes do. invalidate<all> between steps makes
    # opt start each one from a clean cache, as the engine does.
    text = STEP_SEPARATOR.join(printable_pipeline(p) for p in pipelines) if pipelines else "no-op-module"
    strip = "-strip-debug " if strip_debug else ""
    flags = "".join(shlex.quote(o) + " " for o in options)
    return f"opt {strip}{flags}-passes={shlex.quote(text)} {input_name} -o {output_name}"


_PASSES_FLAGS = ("-passes=", "--passes=")


def passes_argument(commandline: str) -> str | None:
    """The -passes= argument of an `opt` command line (None: it has none, e.g. CompilerGym's `opt -flag ...`)."""
    return next((t.split("=", 1)[1] for t in shlex.split(commandline) if t.startswith(_PASSES_FLAGS)), None)


def parse_commandline_flags(commandline: str) -> list[int]:
    """Flag indices in a command line: `opt -passes='...'` (ours) or `opt -flag1 -flag2` (CompilerGym's)."""
    tokens = shlex.split(commandline)
    passes = passes_argument(commandline)
    if passes is not None:
        pipelines = split_pipeline(passes)
        by_canonical: dict[str, int] = {}
        for f in reversed(pass_flags()):
            by_canonical[canonical_pipeline(f.pipeline)] = f.index
        out = []
        i = 0
        while i < len(pipelines):
            # Some flags' pipelines are several top-level elements (e.g. -prune-eh).
            for n in (3, 2, 1):
                key = ",".join(pipelines[i : i + n])
                if len(pipelines[i : i + n]) == n and key in by_canonical:
                    out.append(by_canonical[key])
                    i += n
                    break
            else:
                if pipelines[i] in ("no-op-module", "invalidate<all>"):
                    i += 1
                    continue
                raise UnknownNameError(f"pipeline element '{pipelines[i]}' does not correspond to a CompilerGym flag")
        return out
    return [flag_to_index(t) for t in tokens if t.startswith("-") and t not in ("-o",) and not t.startswith("-o=")]


def parse_commandline_options(commandline: str) -> tuple[str, ...]:
    """opt's own options in an `opt [OPTIONS] -passes='...'` command line (what `commandline_for`
    writes from `options`): every flag but -passes, -o and -strip-debug. () for CompilerGym's
    `opt -flag1 -flag2` form, whose flags are passes."""
    if passes_argument(commandline) is None:
        return ()
    out, skip = [], False
    for t in shlex.split(commandline)[1:]:
        if skip:
            skip = False
        elif t == "-o":
            skip = True
        elif t.startswith("-") and not t.startswith((*_PASSES_FLAGS, "-o=", "-strip-debug", "--strip-debug")):
            out.append(t)
    return tuple(out)


def commandline_steps(commandline: str) -> list[str]:
    """The steps of an `opt -passes='...'` command line as `commandline_for` wrote them (the
    pipelines between its `invalidate<all>` separators), whatever passes they hold."""
    passes = passes_argument(commandline)
    if passes is None:
        raise UnknownNameError("the command line has no -passes=")
    steps, cur = [], []
    for element in split_pipeline(passes):
        if element == "invalidate<all>":
            steps.append(",".join(cur))
            cur = []
        elif element != "no-op-module":
            cur.append(element)
    steps.append(",".join(cur))
    return [s for s in steps if s]


def split_pipeline(text: str) -> list[str]:
    """Split a pipeline at top-level commas (not inside parentheses or <...>)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


# ---------------------------------------------------------------------------
# Observation and reward spaces
# ---------------------------------------------------------------------------


@cache
def autophase_feature_names() -> tuple[str, ...]:
    return tuple(data_path("autophase_features.txt").read_text().split())


@cache
def instcount_feature_names() -> tuple[str, ...]:
    return tuple(data_path("instcount_features.txt").read_text().split())


_INT64_MAX = np.iinfo(np.int64).max


def _scalar_int() -> spaces.Box:
    return spaces.Box(low=0, high=_INT64_MAX, shape=(), dtype=np.int64)


def observation_space_spec(name: str) -> spaces.Space:
    """The gymnasium space of an observation."""
    if name == "Autophase":
        return spaces.Box(low=0, high=_INT64_MAX, shape=(56,), dtype=np.int64)
    if name == "InstCount":
        return spaces.Box(low=0, high=_INT64_MAX, shape=(70,), dtype=np.int64)
    if name == "InstCountNorm":
        return spaces.Box(low=0.0, high=np.inf, shape=(69,), dtype=np.float32)
    if name in ("Ir", "IrSha1"):
        return spaces.Text(max_length=2**31 - 1)
    if name in ("Bitcode",):
        return spaces.Sequence(spaces.Discrete(256))
    if name in ("AutophaseDict", "InstCountDict", "InstCountNormDict"):
        keys = (
            autophase_feature_names()
            if name == "AutophaseDict"
            else [n + ("Count" if name == "InstCountDict" else "Density") for n in instcount_feature_names()]
        )
        if name == "InstCountNormDict":
            keys = keys[1:]
        return spaces.Dict({k: _scalar_int() if name != "InstCountNormDict" else spaces.Box(0.0, np.inf, (), np.float32) for k in keys})
    if name in SCALAR_OBSERVATIONS:
        return _scalar_int()
    raise UnknownNameError(f"unknown observation space '{name}': choose one of {', '.join(OBSERVATION_SPACE_NAMES)}")


SCALAR_OBSERVATIONS = (
    "IrInstructionCount",
    "IrInstructionCountO0",
    "IrInstructionCountO3",
    "IrInstructionCountOz",
    "ObjectTextSizeBytes",
    "ObjectTextSizeO0",
    "ObjectTextSizeO3",
    "ObjectTextSizeOz",
)
OBSERVATION_SPACE_NAMES = (
    "Ir",
    "IrSha1",
    "Bitcode",
    "InstCount",
    "InstCountDict",
    "InstCountNorm",
    "InstCountNormDict",
    "Autophase",
    "AutophaseDict",
    *SCALAR_OBSERVATIONS,
)


@dataclass(frozen=True)
class RewardSpec:
    """A CompilerGym reward: the cost observation and its normalisation (REFERENCE §6.5)."""

    name: str
    cost: str  # observation measured each step
    baseline: str | None  # None: raw delta; "O0": divide by O0 cost; "O3"/"Oz": divide by max(O0 - baseline, 1)

    def init_observation(self) -> str:
        return self.cost.replace("Bytes", "") + "O0" if self.cost.endswith("Bytes") else self.cost + "O0"

    def baseline_observation(self) -> str | None:
        if self.baseline in (None, "O0"):
            return None
        return self.init_observation()[:-2] + self.baseline

    def scale(self, o0: float, baseline: float | None) -> float:
        if self.baseline is None:
            return 1.0
        if self.baseline == "O0":
            return float(max(o0, 1))
        return float(max(o0 - (baseline or 0), 1))


REWARD_SPACES: dict[str, RewardSpec] = {}
for _cost, _prefix in (("IrInstructionCount", "IrInstructionCount"), ("ObjectTextSizeBytes", "ObjectTextSize")):
    REWARD_SPACES[_cost] = RewardSpec(_cost, _cost, None)
    REWARD_SPACES[_prefix + "Norm"] = RewardSpec(_prefix + "Norm", _cost, "O0")
    REWARD_SPACES[_prefix + "O3"] = RewardSpec(_prefix + "O3", _cost, "O3")
    REWARD_SPACES[_prefix + "Oz"] = RewardSpec(_prefix + "Oz", _cost, "Oz")


def reward_spec(name: str) -> RewardSpec:
    try:
        return REWARD_SPACES[name]
    except KeyError:
        raise UnknownNameError(f"unknown reward space '{name}': choose one of {', '.join(REWARD_SPACES)}") from None
