"""The trust layer: principals, authentication and authorization decisions (policy and audit to come)."""
