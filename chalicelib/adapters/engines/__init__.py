"""The engines of a deployed stage called remotely: the engines function (``chalicelib.engines``), a
container-image Lambda, behind the verification ports (``remote``), through an ``EngineInvoker``.

Importing this package loads no model, no numpy and no AWS client.
"""
