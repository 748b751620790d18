"""Credentials: passwords, access/refresh tokens, API keys, sessions."""
