"""The job: its TOML spec, checked, with overrides; everything below reads a ``Job``."""
