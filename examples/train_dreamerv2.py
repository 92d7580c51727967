#!/usr/bin/env python
"""Train (or test) the CompilerDream agent: the reference's command line, unchanged.

    python examples/train_dreamerv2.py --logdir runs/x --configs compilergym compilergym_dv3 small \
        --task compilergym_csmith
"""

import sys

from compilerdream.driver import main

if __name__ == "__main__":
    sys.exit(main())
