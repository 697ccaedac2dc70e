"""Stage 1, data: preference pairs and the other record types, read from files or the hub, audited and split."""
