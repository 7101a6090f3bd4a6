"""Enterprise-portal accounts (账号, SPEC §4, seed 001): sign-up with an immutable login name, a password
(argon2id) and a phone proved by SMS code; the two-step login (password, then a code to the bound phone)
by login name, USCC or ID number, with lockout and back-off; sessions that refresh from the account's
current roles and can be revoked; password change and reset by SMS. Real-name authentication, agent
grants and dealer codes add roles to an account; ``Accounts.roles_of``/``claims_of`` say which.
"""
