"""SMS adapters: the port, Amazon SNS, and the local outbox the developer reads."""
