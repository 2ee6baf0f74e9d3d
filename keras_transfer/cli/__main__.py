"""``python -m keras_transfer.cli``."""

import sys

from keras_transfer.cli import main

try:
    code = main()
except KeyboardInterrupt:  # a stop that reached here past main's own handling: still the clean exit code
    code = 130
sys.exit(code)
