"""Stand-ins for what tests cannot reach (the LLM provider behind Letta, GitHub's API), and a fault-injecting
proxy in front of the real Letta server."""
