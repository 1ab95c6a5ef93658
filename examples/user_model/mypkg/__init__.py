"""An example of a user's own package, benchmarked with HRBench (see ../README.md)."""
