"""Adapters of the captcha port."""
