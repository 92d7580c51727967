"""CompilerGym's leaderboards (LLVM instruction count)."""
