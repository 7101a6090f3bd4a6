"""The registration domain: registrations and their steps (``registrations``), the consent texts and
their acceptance (``consents``), a submission and its outcome (``submission``). Pure: no I/O."""
