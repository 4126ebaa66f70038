"""Deliberate-violation detection: rules over a sliding window per device, noise filtered."""
