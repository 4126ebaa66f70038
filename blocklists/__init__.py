"""Public category lists turned into one compact, memory-mapped domain index."""
