"""fMoW-Sentinel CSV -> chip store.

The same command as `satmae prep fmow-sentinel` (its logic lives in `satmae.prep`); run with
`--help` for every option.
"""

import sys

from satmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "fmow-sentinel", *sys.argv[1:]]))
