"""Mail sources behind one interface (IMAP, POP3, Maildir): list, fetch, delete, set aside. They
know nothing of tickets or storage.
"""
