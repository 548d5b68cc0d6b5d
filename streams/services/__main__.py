"""``python -m streams.services up|down|status|jars``."""

import sys

from streams.services.cli import main

if __name__ == "__main__":
    sys.exit(main())
