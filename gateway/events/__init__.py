"""Access events: from the DNS resolver and the proxy to the database, never blocking a packet."""
