"""``python -m bnconvert.cli``."""

from . import main

main()
