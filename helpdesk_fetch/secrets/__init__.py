"""Where secrets come from (password sources, OAuth2 tokens), and keeping them out of every output
(spec §7).
"""
