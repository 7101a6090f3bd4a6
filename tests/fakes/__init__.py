"""In-memory fakes of every port, for the unit tests of use cases (no AWS, no mocks).

One module per context: ``cards`` (inventory, parties), ``crypto`` (cipher, hasher), ``clock``,
``evidence``, ``operators`` (outbox store, push queue, gateway, directory, keys, nonces), and the
others as each context's ports get theirs.
"""
