"""Consents (同意): the versioned texts a person accepts — the registration agreement, the responsibility
notice (第十三条) and the separate biometric consent (PIPL 第二十九条) — as Markdown files beside this
module, and the rules of their acceptance. Registration asks for the agreements, verification for the
biometric consent; ``domain`` holds the pure rules, ``texts`` reads the files (once per process).
"""
