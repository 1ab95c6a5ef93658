"""Model families. Importing this package registers every family's models."""
from . import hrnet, litehrnet  # noqa: F401  (registration side effects)
