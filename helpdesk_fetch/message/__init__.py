"""Raw bytes -> ParsedMessage: the defensive parser, its fast path for long bodies, Authentication-
Results.
"""
