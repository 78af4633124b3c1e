"""SSL4EO-S12 (Sentinel-2 L1C s2c or L2A s2a) -> chip store of four-season series.

The same command as `satmae prep ssl4eo-s12` (its logic lives in `satmae.prep`); run with
`--help` for every option.
"""

import sys

from satmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "ssl4eo-s12", *sys.argv[1:]]))
