"""Jobs that tie domain pieces together for one trigger (e.g. the scheduled segment run)."""
