"""Usage: the record of every metered call, and the reports built from those records."""
