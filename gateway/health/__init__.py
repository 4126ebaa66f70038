"""The gateway's own health: uplink and upstream measurements, outages, the daily report,
and whether each service is alive (issue 10)."""
