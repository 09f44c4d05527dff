"""Entities' rules and value objects, free of I/O."""
