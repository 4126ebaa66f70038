"""Who is asking: the router's DHCP leases and neighbour table, turned into an IP → MAC map.

A classroom PC is known by its MAC address; its IPv4 lease may change and its IPv6 privacy
addresses rotate. Each gateway process keeps its own ``AddressWatcher`` (``watcher.py``),
which reads the lease files (when their mtime moves) and ``ip -j neigh`` every few seconds
and hands the map to the engine; the engine looks a device pinned by MAC up through it.
Devices seen for the first time are recorded in ``devices_seen`` (``seen.py``) for the
responsible person to assign.
"""
