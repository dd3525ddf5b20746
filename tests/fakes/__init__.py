"""Stand-ins for what tests cannot reach: the LLM provider behind Letta, and GitHub's API."""
