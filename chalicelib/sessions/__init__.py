"""Sign-in sessions (登录会话): a refresh token per session, rotated on every use, revocable.

An owner signs in by SMS code and gets a short access token (a signed JWT, ``core.auth``) and a refresh
token: opaque, random, kept by the server only as a keyed hash. Every refresh answers a new refresh
token and retires the one presented; a retired token presented again (stolen, or replayed) revokes the
whole session. Sign-out revokes it too. ``kind`` and ``subject`` let enterprise and staff sessions use
the same table.
"""
