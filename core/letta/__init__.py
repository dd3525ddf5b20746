"""Talking to a Letta server: the HTTP client (retries, pagination, counting) and the one masker of secrets."""
