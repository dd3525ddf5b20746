"""The Letta App Server backend (ws://, wss://): its Protocol V2 client over one WebSocket, its capability table
and the handlers of the kinds it holds."""
