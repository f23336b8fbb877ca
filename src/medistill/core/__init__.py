"""Leaf helpers: errors, the config schema, hashing, atomic I/O, device, job runtime, energy,
encoding, significance, config slices.
"""
