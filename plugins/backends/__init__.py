"""Backends: how lettafleet talks to each kind of Letta server."""
