"""``python -m mps_triggers_cli`` is ``mps-triggers``."""
import sys

from .main import main

sys.exit(main())
