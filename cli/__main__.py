"""`python -m cli`: the same as the `mydata` command."""
import sys

from cli import main

sys.exit(main())
