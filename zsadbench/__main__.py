"""``python -m zsadbench`` = the ``zsadbench`` command."""
import sys

from zsadbench.cli.main import main

sys.exit(main())
