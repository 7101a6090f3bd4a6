"""Backfill campaigns (补登记, 第二十二条): the place for waves of reminders to the users of cards in
service but not registered. Empty until they land; same shape as the other contexts.
"""
