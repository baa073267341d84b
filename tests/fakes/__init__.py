"""Fakes for hardware this machine lacks (GPU, Jetson): data-driven, injected, never patched in."""
