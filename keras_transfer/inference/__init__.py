"""Keras-free inference pieces: the solved linear head and the unknown-image scorer (NumPy only)."""
