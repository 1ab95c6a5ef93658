"""Model families. Importing this package registers every family's models."""
from . import (dpn, flattenet, gsto, hourglass, hrnet, litehrnet, mobilenetv2,  # noqa: F401  (registration
               resnet, shufflenetv2, simple_baseline)                        # side effects)
