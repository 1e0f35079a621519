"""Who is calling: password and API-key credentials, signed tokens, and the principal they prove."""
