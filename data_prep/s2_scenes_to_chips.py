"""Sentinel-2 scene folders (SAFE or COGs) or index tables -> chip store.

The same command as `satmae prep s2-scenes` (its logic lives in `satmae.prep`); run with
`--help` for every option.
"""

import sys

from satmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "s2-scenes", *sys.argv[1:]]))
