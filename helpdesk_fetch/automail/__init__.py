"""Auto-mails (spec §6): who gets which one, their texts, the outbox that sends them after
commit.
"""
