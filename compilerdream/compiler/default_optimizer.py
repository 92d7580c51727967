"""The default optimizer: -Oz, a coreset of pass sequences, then a little search (torch-free).

`default_policy()` is the method `compilerdream optimize` runs without a checkpoint, and
`compilerdream search/evaluate --methods optimize` run the same one: the caller measures
-Oz (the fallback); where -Oz with every function given the `minsize` attribute (opt's
-force-attribute=minsize, as clang -Oz sets it), alone, with the inliner held back
(-inline-threshold=-20), or with that and the Attributor (-attributor-enable=cgscc, more
if/else diamonds made selects), is smaller, the search compiles under the smallest set of
options (`OPTION_CANDIDATES`); then LLVM's IR outliner runs on the unoptimized program, before -Oz
(`O0_OUTLINE`); then every sequence of the shipped LLVM-19 coreset runs from -O0 or
from -Oz with the best prefix kept, then LLVM's IR outliner is tried on the best result
(`OUTLINE_PIPELINES`), then ten passes once from the best result (`FINISH`) and the outliner once
more on the best, then greedy search continues from the best result so far and random search runs
from -Oz's output while the budget lasts (and the outliner is tried again if they found something
better that it has not seen).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .coreset import Coreset, CoresetPolicy, CoresetResult, load_coreset
from .search import OZ_PIPELINE, Budget, BudgetExhausted, GreedySearch, RandomSearch, SearchContext, SearchPolicy


class _PhaseContext:
    """A SearchContext seen through a phase: its own budget threshold and its own idea of a reset."""

    def __init__(self, ctx: SearchContext, over: Callable[[], bool], reset: Callable[[SearchContext], None] | None):
        self._ctx, self._over, self._reset = ctx, over, reset

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)

    @property
    def exhausted(self) -> bool:
        return self._ctx.exhausted or self._over()

    def step(self, action) -> tuple[float, bool]:
        if self._over():
            raise BudgetExhausted
        return self._ctx.step(action)

    def trace(self, actions) -> tuple[list[float], bool]:
        if self._over():
            raise BudgetExhausted
        return self._ctx.trace(actions)

    def reset(self, start: str | None = None) -> None:
        if self._over():
            raise BudgetExhausted
        if self._reset is None or start is not None:
            self._ctx.reset(start=start)
        else:
            self._reset(self._ctx)

    def fork(self) -> _PhaseContext:
        return _PhaseContext(self._ctx.fork(), self._over, None)


def from_start(start: str) -> Callable[[SearchContext], None]:
    def reset(ctx: SearchContext) -> None:
        ctx.reset(start=start)

    return reset


def replay(ctx: SearchContext, start: str, passes: Sequence) -> None:
    """A new trajectory: `passes` replayed from `start` (one compilation a pass)."""
    ctx.reset(start=start)
    ctx.trace(list(passes))


def from_best(ctx: SearchContext) -> None:
    """Continue from the best sequence found so far (replayed, one compilation a pass);
    from -Oz's output when nothing has beaten the unoptimized program yet, or when the best was
    compiled under other opt options than the context's (`SearchContext.fork_with_options`)."""
    start, actions = ctx.best_start, list(ctx.best_actions)
    if not actions or ctx.best_options != tuple(ctx.env.compiler_options):  # (other options: see prelude)
        ctx.reset(start="oz")
        return
    head = ctx.start_actions(start)  # what the reset to `start` holds already (default<Oz>, forceattrs)
    replay(ctx, start, actions[len(head):] if actions[: len(head)] == head else actions)


#: The clean-up after outlining (instcombine as the action space spells it: LLVM 19's plain
#: `instcombine` aborts when it does not reach a fixpoint in one iteration).
CLEANUP = "function(instcombine<no-verify-fixpoint>,simplifycfg)"
#: Pipelines tried, each once on a fork, on the best result found: LLVM's IR outliner
#: (`iroutliner`; in neither -Oz nor CompilerGym's 124 actions) replaces instruction sequences
#: that repeat across a module by calls to one new function, and the clean-up passes fold
#: what that exposes (the outliner's own cost model decides what to outline; where it finds
#: nothing the module is unchanged). Chosen by `benchmarks/outline_choice.py` on the default
#: corpus's validation split: the best pair among the replayable candidates (gvn-sink before
#: the outliner did better but gives different modules from one input in LLVM 19.1.7).
OUTLINE_PIPELINES = (
    f"iroutliner,{OZ_PIPELINE},iroutliner,{CLEANUP}",
    f"iroutliner,{CLEANUP},iroutliner,{CLEANUP}",
)


#: Pipelines tried once each on the unoptimized program (after `choose_options`' preparation),
#: before the coreset: the outliner finds more repeats in -O0 code (a test driver calls the same
#: functions with the same loads and stores around them, assertion after assertion) than after
#: -Oz has inlined and folded it. The first of `OUTLINE_PIPELINES`, and the same after mem2reg.
#: Chosen on the validation split: 11 candidate pipelines, each applied to 60 programs under the
#: options their `optimize` result used and added to it: +8.01% -> +8.70% for the first alone
#: (3 programs smaller), +8.55% for the second (11 smaller), +8.81% for both (12 smaller); the
#: best pair +8.86%, the best three +8.94%. Not under `-ir-outlining-no-cost` (the outliner
#: without its cost model), which scored higher on counts (+9.39% alone) but changes what programs
#: compute: each outlining pipeline under it changed the printed checksum of 3 to 26 of 175 csmith
#: programs of the train split, where the pipelines here changed none, with or without the option
#: sets (`benchmarks/outline_check.py`).
O0_OUTLINE = (OUTLINE_PIPELINES[0], f"function(mem2reg),{OUTLINE_PIPELINES[0]}")


def outlined(actions: Sequence) -> bool:
    """Whether a sequence already holds one of the outlining pipelines."""
    return any(a in OUTLINE_PIPELINES or a in O0_OUTLINE for a in actions)


#: On how many of the coreset's best distinct results (each sequence's best prefix, best first)
#: `optimize` tries the outlining pipelines: the best result before outlining is often not the
#: best after it. Chosen on the validation split: coreset + outlining alone (40 programs): the
#: best 1 result +5.77% mean below -Oz, 3 +6.14%, 6 +6.83%, 10 +6.89%, all 31 +7.45%; the whole
#: default `optimize` (60 programs): 6 +7.10% at a median 0.91 s a program, 12 +7.61% at 1.05 s,
#: all 31 +7.98% at 1.39 s. Then outlining got cheaper (the coreset keeps forks of its best
#: results, so they are not replayed; a module two sequences reach is outlined once; the worker
#: starts 0.2 s sooner) and search after it was found to add nothing measurable: on the same 60
#: programs, one run, 6 results + 0.5 s of search +7.10% at a median 1.12 s on that day's machine;
#: 12 + 0.1 s +7.61% (1.08x the time per program, before the faster worker start); 16 + 0.1 s
#: +7.65% (1.12x); 8 + 0.3 s +7.23% (0.95x). Chosen: 12 with 0.1 s (DEFAULT_SEARCH_SECONDS).
#: With four option sets the whole of `optimize` got cheaper per point, so more results were tried
#: again on the same 60 validation programs, each a separate run in one session: 12 +9.57% at a
#: median 0.78 s a program, 20 +9.77% at 0.96 s (4 programs smaller, none larger; 1.14-1.25x the time
#: per program against two runs with 12), all 31 +9.81% at 1.10 s (7 smaller, 1 larger; 1.28-1.36x).
#: Chosen: 20.
OUTLINE_TOP = 20

#: opt's options under which `optimize` compiles a program when -Oz under them beats -Oz (one
#: compilation decides; `SearchContext.choose_options`): every function gets the `minsize`
#: attribute, as clang's -Oz sets it (`opt -passes='default<Oz>'` on bitcode without it, the
#: -Oz of CompilerGym and of this project, leaves it off). The program is prepared with
#: `forceattrs`, so the sequences from -O0 see the attribute too. Chosen on the validation split
#: (60 programs, one run each): -Oz with the attribute is smaller than -Oz on 16 of them, never
#: larger (+1.15% mean alone); the whole of `optimize` with every program given the attribute
#: +7.77% against +7.60% without, better on 14 and worse on 4; given it only where -Oz with it
#: is smaller (this rule) +7.86%, nearly the best of both runs (+7.89%).
MINSIZE_OPTIONS = ("-force-attribute=minsize",)
MINSIZE_PREPARE = ("forceattrs",)
#: The option sets `optimize` tries (`SearchContext.choose_options`: -Oz under each, one
#: compilation each; the smallest wins if it beats -Oz). The second also forbids the inliner all
#: but free inlining (a negative threshold), which -Oz with the attribute still does too much of
#: on some programs (csmith_258: -Oz 101 instructions, with the attribute 101, with both 61).
#: Chosen on the same 60 validation programs, all variants in one run: the attribute alone
#: +7.86%; the attribute or both (this) +8.01%, 8 programs smaller and none larger, the same
#: time; adding `-inline-threshold=-20` alone as a third set +8.03%. -Oz alone under thresholds
#: of -5, 0, -100 and -1000 with the attribute: -100 and -1000 the same as -20 within 0.03 points.
#: The third set adds LLVM's Attributor on each call-graph SCC (`-attributor-enable=cgscc`: it
#: deduces attributes and simplifies with them, e.g. arguments and returns that are always one
#: value, calls that cannot return) and lets SimplifyCFG turn if/else diamonds into selects up to
#: 16 instructions (`-two-entry-phi-node-folding-threshold=16`, default 4: a diamond's two
#: branches and its phi become one select). Chosen on the same 60 validation programs: 14
#: additions tried on top of either set as a third set, -Oz alone (the best of the two sets
#: +1.71% below -Oz; with this set +2.01%, 14 programs smaller; the Attributor alone +1.88%, the
#: threshold alone +1.84%, `-inline-call-penalty=0` +1.74%; `-phi-node-folding-threshold`,
#: `-bonus-inst-threshold` and hot/cold splitting nothing); then the whole of `optimize`, both
#: in one session: +8.81% -> +9.07%, 11 programs smaller and 2 larger, 1.06x the time per
#: program (the set wins on 24 of the 60). `benchmarks/outline_check.py` runs -Oz and the
#: outliner under it with lli on csmith programs.
ATTRIBUTOR_OPTIONS = ("-attributor-enable=cgscc", "-two-entry-phi-node-folding-threshold=16")
NO_INLINING_OPTIONS = (*MINSIZE_OPTIONS, "-inline-threshold=-20")
#: The fourth set changes what -Oz's scalar passes do rather than what it inlines: every
#: SimplifyCFG run hoists the instructions that begin both sides of a branch and sinks those that
#: end them (`-hoist-common-insts`, `-sink-common-insts`: -Oz does so only in its last SimplifyCFG)
#: and may fold blocks into loop headers (`-keep-loops=false`), GVN does no partial redundancy
#: elimination (`-enable-pre=false`, `-enable-load-pre=false`: PRE inserts a computation on the
#: paths that lack it, which costs instructions), and the inliner is stricter still
#: (`-inline-threshold=-100`), with the third set's Attributor. Chosen on the whole validation
#: split (532 programs), -Oz alone, each added to the three sets as a fourth, in rounds: the three
#: sets +1.97% below -Oz; hoisting and sinking +2.19; with no PRE +2.32 (125 programs smaller);
#: with no loop-keeping +2.39; with -100 +2.44 (-Oz's own -inline-threshold=-20 kept +2.39, jump
#: threading off +2.36, `-attributor-enable=all` +2.35, MergeFunctions +1.97; `-enable-gvn-hoist`
#: +2.10 in the first round but left out: GVNHoist is off in LLVM's pipelines for its open
#: miscompiles; `-switch-to-lookup`, loop flattening, wider DSE/memdep scans,
#: `-simplifycfg-branch-fold-threshold=4` and 7 others nothing). Then the whole of `optimize` on the
#: 60 validation programs above, both in one session: +9.11% -> +9.57%, 20 programs smaller and 1
#: larger, 1.05x the time per program.
SIMPLIFYCFG_OPTIONS = ("-hoist-common-insts", "-sink-common-insts", "-keep-loops=false")
NO_PRE_OPTIONS = ("-enable-pre=false", "-enable-load-pre=false")
#: ... and IndVarSimplify does not rewrite a loop's exit test to compare against a computed trip
#: count (`-disable-lftr`: linear function test replacement often adds the instructions that compute
#: the limit). Chosen on the validation split: -Oz alone under the fourth set with it, 328 programs,
#: +1.36% -> +1.47% below -Oz (45 programs smaller, 4 larger; 19 other additions scored the same way
#: gained at most +0.02, or lost as many programs as they won: `-indvars-widen-indvars=false` +1.54%,
#: 57 smaller and 64 larger); then the whole of `optimize` on three validation samples, each against
#: the same day's run without it: the 60 programs above +9.75% -> +9.87% (10 smaller, 1 larger), 60
#: others +4.35% -> +4.42% (7 and 1), all 305 under 200 instructions after -Oz +7.35% -> +7.54% (29
#: and 4), the same time per program.
NO_LFTR_OPTIONS = ("-disable-lftr",)
OPTION_CANDIDATES = (
    MINSIZE_OPTIONS,
    NO_INLINING_OPTIONS,
    (*NO_INLINING_OPTIONS, *ATTRIBUTOR_OPTIONS),
    (*MINSIZE_OPTIONS, "-inline-threshold=-100", *ATTRIBUTOR_OPTIONS, *SIMPLIFYCFG_OPTIONS, *NO_PRE_OPTIONS, *NO_LFTR_OPTIONS),
)
#: The option sets under which `prelude` also runs `O0_OUTLINE` where -Oz's count chose another set
#: (or none): a few more compilations. -Oz's count often does not show what a set does to what
#: follows: on json-c's test_int_add.c every set's -Oz gives 141 instructions, so none is chosen
#: (result 101), while the outliner on the program prepared under the fourth set gives 91. Chosen on
#: the validation split, each against a run without it (the per-program best of both is the result,
#: so no program can get larger but for the 20 s cap); this has the largest gain per compilation of
#: what was tried:
#: - the whole search (outliner on the unoptimized program, the coreset, the outliner on 20 results)
#:   again under the fourth set: 60 programs +9.87% -> +10.81%, 60 others +4.42% -> +4.46%, 305 under
#:   200 instructions after -Oz +7.54% -> +7.92%, at 1.3-1.8x the time per program (1.41x on the 305);
#: - only the outliner on the unoptimized program under the fourth set (this): +9.87% -> +10.23%,
#:   +4.42% -> +4.44%, +7.54% -> +7.75% (on the 280 of the 305 outside the 60: +0.16 points, 7
#:   programs smaller), at 1.08x and 1.13x the time per program (the 60 and the 305, same sessions);
#: - the same under every set and under none: one program more (of the 305), at 1.20x the time there.
#: - this and the outlining pipelines on the fourth set's -Oz output: the same three figures.
O0_OUTLINE_ALSO = (OPTION_CANDIDATES[3],)
#: Tried and not kept as the rule that picks among these sets: the fourth wherever its -Oz is at
#: most 5% larger than -Oz (the smallest that beats -Oz elsewhere). On the 60 programs +9.75% ->
#: +10.59%, but on held-out validation programs about as many programs got larger as smaller (60
#: others: 4 and 4; the 305 under 200 instructions: 28 and 25), and the test split lost (+7.35% ->
#: +7.16%); the README has the figures.


#: Passes applied once, in order, to the best result after the outliner (the best prefix is kept):
#: a few passes from CompilerGym's actions still find something in what the coreset and the outliner
#: leave (GVN, GVNHoist and NewGVN merge loads and computations that outlining or a sequence exposed,
#: the load/store vectorizer merges adjacent stores). Chosen on the validation split: every shipped
#: coreset sequence applied once to `optimize`'s result on 365 programs (the 60 of `--limit 60`, 60
#: others, the 305 under 200 instructions after -Oz): the best single one is this (a sequence of the
#: shipped coreset that starts from -Oz), +7.64% -> +7.74% mean below -Oz for 10 passes; the next
#: best adds +0.04 for 64 passes; all 31 +7.85% for 619. Chosen on the 305 small programs alone, it
#: is the first pick too and gains +0.26 points on the 60 others; chosen on those, +0.07 on the 305.
#: After them the outlining pipelines run once more on the best, even where it holds outlining
#: already (`SearchAlone._outline` with `again`): on the same 365 programs +7.73% -> +7.78%; the
#: whole of `optimize`, three validation samples, each against a run with the passes and without it
#: in one session: the 60 programs +10.39% -> +10.49%, 60 others +4.51% -> +4.57%, the 305 small
#: ones +7.82% -> +7.84% (17 programs smaller, 2 larger, both at the 20 s cap; 1-2% more compilations).
FINISH = ("-gvn", "-gvn-hoist", "-mem2reg", "-slsr", "-speculative-execution", "-newgvn", "-tailcallelim",
          "-simplifycfg", "-globalopt", "-load-store-vectorizer")


def fork_under(ctx: SearchContext, options: Sequence[str]) -> SearchContext:
    """`ctx.fork_with_options(options)`, the program prepared as `optimize` prepares one it compiles
    under options (`MINSIZE_PREPARE`; nothing without options). Close it after use."""
    return ctx.fork_with_options(options, MINSIZE_PREPARE if options else ())


@contextmanager
def at_best(ctx: SearchContext) -> Iterator[SearchContext]:
    """A context holding the best result so far (replayed, one compilation a pass) under the opt
    options it was compiled under: `ctx` itself, or where those are not its options a fork under
    them (`SearchContext.fork_with_options`, closed on exit); -Oz's output where nothing has beaten it."""
    options = ctx.best_options
    if not ctx.best_actions or options == tuple(ctx.env.compiler_options):
        from_best(ctx)
        yield ctx
        return
    other = fork_under(ctx, options)
    try:
        head, actions = other.trajectory, ctx.best_actions  # the preparation the fork holds already
        other.trace(actions[len(head):] if actions[: len(head)] == head else actions)
        yield other
    finally:
        other.close()


def finish(ctx: SearchContext, passes: Sequence[str]) -> None:
    """`passes` once from the best result so far (`at_best`); the harness keeps the best prefix."""
    with at_best(ctx) as at:
        at.trace(list(passes))


class Outline(SearchPolicy):
    """Each of `OUTLINE_PIPELINES` once, on a fork of the best result so far under the options it
    was compiled under (`at_best`), or of -Oz's output (`from_oz`); the best prefix keeps it only
    where it is smaller."""

    name = "outline"

    def __init__(self, pipelines: Sequence[str] = OUTLINE_PIPELINES, from_oz: bool = False):
        self.pipelines = tuple(pipelines)
        self.from_oz = from_oz
        if from_oz:
            self.name, self.fixed_start = "-Oz + outline", "oz"

    def search(self, ctx: SearchContext) -> None:
        if self.from_oz:
            ctx.reset(start="oz")
            self.fork_each(ctx)
            return
        with at_best(ctx) as at:
            self.fork_each(at)

    def fork_each(self, ctx: SearchContext) -> None:
        """Each pipeline once on a fork of ctx's current module."""
        for pipeline in self.pipelines:
            child = ctx.fork()
            try:
                child.step(pipeline)
            finally:
                child.close()


def prelude(ctx: SearchContext, option_candidates: Sequence[Sequence[str]], o0_outline: Outline | None) -> None:
    """What `optimize` does before any sequence: choose the opt option set whose -Oz is smallest
    (`SearchContext.choose_options`, when there are candidates), then each of `o0_outline`'s
    pipelines once on a fork of the (prepared) unoptimized program, and (with candidates) once
    more on the program compiled under each set of `O0_OUTLINE_ALSO` that was not chosen; the rest
    of the search compiles under the chosen set."""
    if option_candidates:
        ctx.choose_options(option_candidates, MINSIZE_PREPARE)
    if o0_outline is not None:
        ctx.reset("o0")
        o0_outline.fork_each(ctx)
        for options in O0_OUTLINE_ALSO if option_candidates else ():
            if tuple(options) == tuple(ctx.env.compiler_options):
                continue
            other = fork_under(ctx, options)
            try:
                o0_outline.fork_each(other)
            finally:
                other.close()


def prelude_parts(option_candidates: Sequence[Sequence[str]], o0_outline: Outline | None) -> list[str]:
    """What `prelude` with these arguments does, in words (for a policy's `describe`)."""
    parts = [(f"the opt option set whose -Oz is smallest where it beats -Oz ({len(option_candidates)} sets: "
              "minsize, less inlining, the Attributor, SimplifyCFG hoisting and sinking without PRE or LFTR)")] if option_candidates else []
    also = " (under the chosen set and under the fourth)" if option_candidates and O0_OUTLINE_ALSO else ""
    return parts + ([f"the IR outliner on the unoptimized program{also}"] if o0_outline is not None else [])


@dataclass(frozen=True)
class Phase:
    """One method run until `until` (a fraction of the budget, cumulative) is spent."""

    label: str
    policy: SearchPolicy
    reset: Callable[[SearchContext], None] | None
    until: float


def search_phases() -> list[Phase]:
    """Greedy from -Oz's output first (cheap, and only ever improves on -Oz), then greedy from
    -O0 (finds what -Oz's inlining/unrolling hides), then random episodes from -Oz's output.
    The shares were picked on the sample programs and csmith programs at 2,000 compilations."""
    return [
        Phase("greedy from -Oz", GreedySearch(), from_start("oz"), 0.3),
        Phase("greedy from -O0", GreedySearch(), from_start("o0"), 0.8),
        Phase("random search from -Oz", RandomSearch(), from_start("oz"), 1.0),
    ]


def default_phases() -> list[Phase]:
    """After the coreset: greedy search continuing from the best coreset result (it only ever
    improves it), then random episodes from -Oz's output."""
    return [
        Phase("greedy from the best so far", GreedySearch(), from_best, 0.7),
        Phase("random search from -Oz", RandomSearch(), from_start("oz"), 1.0),
    ]


class SearchAlone(SearchPolicy):
    """Phases sharing one budget (see `search_phases`), optionally after a coreset.

    With a coreset, every coreset sequence runs first (from -O0 or from -Oz, best prefix
    kept; see compilerdream.compiler.coreset), then the phases of `default_phases` spend
    what is left of the budget. Each phase runs until it converges or its cumulative share
    of the budget is spent; what a phase leaves unused goes to the next. The best prefix
    over everything wins.
    """

    name = "search"
    fixed_start = "o0"  # its phases choose their starts themselves

    def __init__(
        self,
        budget: Budget,
        phases: Sequence[Phase] | None = None,
        coreset: Coreset | None = None,
        outline: bool = False,
        minsize: bool = False,
        finish: Sequence[str] = (),
    ):
        self.budget = budget
        #: passes tried once from the best result after the outliner (`FINISH`; () for none)
        self.finish = tuple(finish)
        self.coreset = coreset
        #: opt option sets tried first (`SearchContext.choose_options`); () with `minsize` False
        self.option_candidates = OPTION_CANDIDATES if minsize else ()
        if phases is None:
            phases = default_phases() if coreset is not None else search_phases()
        self.phases = list(phases)
        self.outline = Outline() if outline else None
        self.o0_outline = Outline(O0_OUTLINE) if outline else None
        self.outline_top = OUTLINE_TOP
        if coreset is not None:
            self.name = "optimize" if outline else "optimize-no-outline"

    def describe(self) -> str:
        parts = prelude_parts(self.option_candidates, self.o0_outline)
        parts += [f"the {self.coreset.name} coreset ({len(self.coreset)} sequences)"] if self.coreset else []
        if self.outline:
            parts += [f"the IR outliner on its best {self.outline_top} results" if self.coreset else "the IR outliner"]
        if self.finish:
            parts += [f"{len(self.finish)} passes from the best result"]
            parts += ["the IR outliner on the best again"] if self.outline else []
        return ", then ".join(parts + [p.label for p in self.phases])

    def _over(self, ctx: SearchContext, fraction: float) -> Callable[[], bool]:
        b = self.budget

        def over() -> bool:
            if b.compilations is not None and ctx.compilations >= fraction * b.compilations:
                return True
            return b.seconds is not None and ctx.elapsed >= fraction * b.seconds

        return over

    def _outline(self, ctx: SearchContext, tried: set, again: bool = False) -> None:
        """The outlining pipelines on the best result (`Outline.search`), unless it holds one already
        (`again`: even then) or they were tried on it (the whole search's budget applies, not a
        phase's: like the coreset, it always runs)."""
        best = (ctx.best_start, tuple(ctx.best_actions))
        if self.outline is None or (outlined(ctx.best_actions) and not again) or best in tried:
            return
        tried.add(best)
        try:
            self.outline.search(ctx)
        except BudgetExhausted:
            pass

    def _outline_results(self, ctx: SearchContext, results: Sequence[CoresetResult], tried: set) -> None:
        """The outlining pipelines on the best `outline_top` distinct coreset results (each
        sequence's best prefix). A result that came with a fork (its whole sequence ends at the
        best count) is outlined there; the others are replayed first (one compilation a pass).
        A module that an earlier result already reached (same IR) is not outlined again."""
        distinct: dict[tuple, CoresetResult] = {}
        for r in results:
            if (r.passes or r.start == "oz") and (r.start, r.passes) not in distinct:  # not bare -O0
                distinct[(r.start, r.passes)] = r
        modules: set[str] = set()  # IR hashes outlined already: sequences often end at the same module
        for r in list(distinct.values())[: self.outline_top]:
            tried.add((r.start, tuple(ctx.start_actions(r.start) + list(r.passes))))  # as ctx.best_actions spells it
            at = r.fork
            if at is None:
                replay(ctx, r.start, r.passes)
                at = ctx
            digest = str(at.env.observation["IrSha1"])
            if digest not in modules:
                modules.add(digest)
                self.outline.fork_each(at)

    def search(self, ctx: SearchContext) -> None:
        tried: set = set()  # (start, actions) the outliner has seen
        prelude(ctx, self.option_candidates, self.o0_outline)
        if self.coreset is not None:
            results = CoresetPolicy(self.coreset).run(ctx, keep=self.outline_top if self.outline else 0)
            try:
                if self.outline is not None:  # on the best few coreset results, not only the best
                    self._outline_results(ctx, results, tried)
            except BudgetExhausted:
                return
            finally:
                for r in results:
                    if r.fork is not None:
                        r.fork.close()
        self._outline(ctx, tried)
        if self.finish:
            try:
                finish(ctx, self.finish)
            except BudgetExhausted:
                return
            self._outline(ctx, tried, again=True)  # outlining an outlined module again still finds repeats
        for phase in self.phases:
            if ctx.exhausted:
                break
            phased = _PhaseContext(ctx, self._over(ctx, phase.until), phase.reset)
            try:
                phase.policy.search(phased)  # type: ignore[arg-type]
            except BudgetExhausted:
                continue
        self._outline(ctx, tried)  # the search found something better that the outliner has not seen


#: `optimize` with no budget flag: the coreset and the outliner always run to their end, then
#: search goes on until this many seconds have passed for the program (coreset time included).
#: Search after outlining 12 results added nothing measurable on the validation split (see
#: OUTLINE_TOP), so it only gets what small programs leave of 0.1 s.
DEFAULT_SEARCH_SECONDS = 0.1
#: ... and without the outliner (`--no-outline`), where search does add (+4.26% against the
#: coreset's +4.04% on the test split), until 0.5 s.
NO_OUTLINE_SEARCH_SECONDS = 0.5
#: ... and no program gets more than this in all (coreset included), however large it is.
DEFAULT_CAP_SECONDS = 20.0


def default_budget() -> Budget:
    """The whole budget of `optimize`'s default method when no budget is given (the harness's cap)."""
    return Budget(seconds=DEFAULT_CAP_SECONDS)


def default_budgets() -> dict[str, Budget]:
    """`default_budget()` by the names of the policies that use it (optimize with and without outlining)."""
    return {"optimize": default_budget(), "optimize-no-outline": default_budget()}


def default_search_seconds(outline: bool = True) -> float:
    """The search seconds of `optimize` without a budget flag, with or without the outliner."""
    return DEFAULT_SEARCH_SECONDS if outline else NO_OUTLINE_SEARCH_SECONDS


def default_policy(
    coreset: str | os.PathLike | Coreset | None = "default",
    search_seconds: float | None = None,
    search_compilations: int | None = None,
    outline: bool = True,
    minsize: bool | None = None,
) -> tuple[SearchPolicy, Budget]:
    """The method `compilerdream optimize` runs without a checkpoint, and its budget.

    -Oz (the fallback, measured by the caller), then the coreset from -O0 and from -Oz
    (best prefix), then the IR outliner on the best (`outline`; False keeps the result
    within CompilerGym's action space and -Oz) and, with `outline`, `FINISH`'s passes from the
    best and the outliner once more, then greedy/random search while the budget lasts.
    `minsize` (None: as `outline`): first compile under the set of OPTION_CANDIDATES whose -Oz
    is smallest, where it beats -Oz (the result's command line then carries it).
    Without budget arguments: search until default_search_seconds(outline) (the coreset and the
    outliner always finish, up to DEFAULT_CAP_SECONDS for the largest programs).
    """
    cs = load_coreset(coreset) if coreset is not None else None
    if search_seconds is None and search_compilations is None:
        phases_budget, budget = Budget(seconds=default_search_seconds(outline)), default_budget()
    else:
        phases_budget = budget = Budget(seconds=search_seconds, compilations=search_compilations)
    minsize = outline if minsize is None else minsize
    return SearchAlone(phases_budget, coreset=cs, outline=outline, minsize=minsize, finish=FINISH if outline else ()), budget


