"""Broadcast adapters: ways publications reach the gateway."""
