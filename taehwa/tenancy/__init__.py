"""Tenancy: tenants (companies), and later users, roles, tokens and the audit trail."""
