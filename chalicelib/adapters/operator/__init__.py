"""Telecom operator integration (电信企业): push registrations, receive their answers."""
