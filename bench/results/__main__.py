"""`python -m bench.results`: the same as `rlhf-bench-results`."""

import sys

from bench.results.cli import main

sys.exit(main())
