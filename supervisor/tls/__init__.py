"""Certificates for the proxy's TLS listener: ACME."""
