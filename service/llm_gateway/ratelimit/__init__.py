"""Request rate limits (per caller, per client address, and on login) with the `limits` library."""
