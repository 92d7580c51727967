#!/usr/bin/env python
"""Value prediction on the coreset (REFERENCE §1.5, §4.3): the reference's command line, outputs under --logdir/coreset.

    python examples/test_on_coreset.py --logdir runs/cs --configs compilergym compilergym_dv3 coreset_test \
        --task compilergym_cbench --load_logdir runs/coreset_train --no_eval True
"""

import sys

from compilerdream.coreset import main_coreset

if __name__ == "__main__":
    sys.exit(main_coreset())
