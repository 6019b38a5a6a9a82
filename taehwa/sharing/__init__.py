"""Sharing between tenants by explicit grant: what one company lets another (or the city) read."""
