"""Helpers shared by tests: a real Triton release built from the pytriton wheel (triton_dist)."""
