"""Command-line programs: `python -m compiler_gym.bin.random_search`, `python -m compiler_gym.bin.validate`."""
