import sys

from kmnist_core.data import DatasetUnavailable

from .measure import main

try:
    sys.exit(main())
except DatasetUnavailable as error:
    sys.exit(f"error: {error}")
