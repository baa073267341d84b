"""Simulated test fleet: namespace hosts reached over real SSH (see tests/fleet/README.md)."""
