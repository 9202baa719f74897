"""Language model backends and prompting."""
