#!/usr/bin/env python
"""Guided search with a trained agent (REFERENCE §1.4, §3): the reference's command line, outputs under --logdir.

    python examples/test_guided_search.py --logdir runs/gs --configs compilergym compilergym_dv3 \
        cbench_train_nolimit --task compilergym_cbench --load_logdir runs/train --no_eval True
"""

import sys

from compilerdream.search import main_guided

if __name__ == "__main__":
    sys.exit(main_guided())
