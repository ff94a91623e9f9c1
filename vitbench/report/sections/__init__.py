"""Report sections, one module per kind of result: cost, attention, training."""
