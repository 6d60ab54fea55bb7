"""Which ticket a message belongs to (tags, threading), what it does to it (the rules of spec §5),
and the ticket queries.
"""
