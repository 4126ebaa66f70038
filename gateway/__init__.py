"""The moving parts of kalkan: DNS resolver, proxy, events, notifications and the command line."""
