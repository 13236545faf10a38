"""The control API on the daemon's unix socket (aiohttp)."""
