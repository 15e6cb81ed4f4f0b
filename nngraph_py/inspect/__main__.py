"""``python -m nngraph_py.inspect CHECKPOINT [--dot OUT.svg] [--compare OTHER] [--full-meta]``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
