"""The Letta App Server backend: its Protocol V2 client over one WebSocket."""
