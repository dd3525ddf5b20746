"""The built-in backends, one folder each: the protocols lettafleet speaks to Letta servers."""
