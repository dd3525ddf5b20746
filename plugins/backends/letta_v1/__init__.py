"""Letta's V1 REST API (self-hosted 0.16.x and hosted Letta), over http:// and https://."""
