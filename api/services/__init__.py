"""What the endpoints do. Services take the request's session, raise typed errors
(core.errors) and never commit: the request owns the transaction."""
