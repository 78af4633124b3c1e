"""OSCD native-resolution folders -> torchgeo's imgs_*_rect layout.

The same command as `satmae prep oscd-torchgeo` (its logic lives in `satmae.prep`); run with
`--help` for every option.
"""

import sys

from satmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "oscd-torchgeo", *sys.argv[1:]]))
