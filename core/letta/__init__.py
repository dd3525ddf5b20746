"""What core knows of any Letta server, whatever backend speaks to it: the client interface and its errors, the one
masker of secrets, pacing and retries, and how a server describes itself. Backends' clients are plugins."""
