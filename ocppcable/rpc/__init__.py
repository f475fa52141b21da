"""AnyCable RPC clients: one interface, a gRPC and an HTTP transport, an in-process demo."""
