"""Letta Code's App Server (Protocol V2 over one WebSocket), over ws:// and wss://."""
