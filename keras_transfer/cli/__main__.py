"""``python -m keras_transfer.cli``."""

import os
import sys

from keras_transfer.cli import main

try:
    code = main()
except KeyboardInterrupt:  # a stop that reached here past main's own handling: still the clean exit code
    code = 130
if code == 130:  # stopped: what was kept is already written; exit now, so that no finalizer interrupted
    sys.stdout.flush()  # by the same signal can turn the clean stop into a death by SIGINT
    sys.stderr.flush()
    os._exit(130)
sys.exit(code)
