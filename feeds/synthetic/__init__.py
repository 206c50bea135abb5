"""The seeded generator of the bundled recordings."""
