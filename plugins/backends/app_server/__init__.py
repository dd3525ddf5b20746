"""The Letta App Server backend (ws://, wss://): its Protocol V2 client over one WebSocket and its capability table."""
