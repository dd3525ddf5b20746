"""A local Letta 0.16.8 server with its PostgreSQL, for trying lettafleet, its demo and its integration tests:
`lettafleet dev-server up|down|status`."""
