"""Webhook gateway: verify provider webhooks, normalize them to CloudEvents, route them."""

__version__ = "0.1.0"
