"""One run: accounts -> messages -> parse -> thread -> rules -> store -> delete; deliver (the MTA
pipe) and errors retry.
"""
