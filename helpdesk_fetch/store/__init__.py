"""The database: opened late and migrated on open (peewee), the tables, the per-message SQL and
writes, db copy.
"""
