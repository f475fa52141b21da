"""AnyCable RPC clients: one interface, a gRPC and an HTTP transport, an in-process one for the
demo and Python channels, and what they share (the call policy, the circuit breaker, the Disconnect queue)."""
