"""HTTP: the ingress route, health endpoints, and the one place errors become status codes."""
