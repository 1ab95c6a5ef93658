"""``python -m bench ...`` is the ``hrbench`` command."""
import sys

from .cli import main

sys.exit(main())
