"""Model families. Importing this package registers every family's models."""
from . import (dpn, hourglass, hrnet, litehrnet, mobilenetv2, resnet,  # noqa: F401  (registration
               shufflenetv2, simple_baseline)                      # side effects)
