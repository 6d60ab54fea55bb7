"""OAuth2 (XOAUTH2) logins for IMAP, POP3 and SMTP (spec §7), with the standard library only.

``settings`` checks the keys when the accounts file is loaded; ``tokens`` hands out access tokens
(from a command, a saved refresh token, or the client-credentials flow); ``authorize`` walks an
administrator through the first sign-in. This package stays light on import: the accounts file is
loaded by every command, the network code only by the ones that log in.
"""
