"""Enterprise accounts and fleet registration (单位用户, 第九条): the place for the legal-person account,
its agents, fleet batches and their Step Functions approval. Empty until those land; it will follow the
same shape as the other contexts: ``domain/`` (pure rules), ``ports.py`` (ABCs), use-case modules.
"""
