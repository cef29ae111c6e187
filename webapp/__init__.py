"""LAN-XI dashboard: multi-module, sample-synchronous capture from a browser."""

__version__ = "0.1.0"
