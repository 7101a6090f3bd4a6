"""The registration domain: registrations and their steps (``registrations``), a submission and its
outcome (``submission``). Pure: no I/O. The consent texts are in ``chalicelib.consents``."""
