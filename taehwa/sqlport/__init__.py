"""SQL over the PostgreSQL wire protocol: a tenant's points, tags, assets, signals and alerts as read-only views.

`taehwa serve --sql-port PORT` starts it beside the HTTP API. Each client connection is one DuckDB connection that
sees only its caller's tenant (the connection's database name), with no file, network or setting access of its own.
"""
