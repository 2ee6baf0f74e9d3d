"""The base layer: typed errors, paths and atomic writes, logging and progress."""
