"""What operators watch: status."""

# The log records' attributes of spec §11.2 (quiet repeats), kept with the errors they mark:
# the command line's logging, the accounts' runs and the auto-mail sender all read or set them.
from helpdesk_fetch.errors import RECOVERED as RECOVERED
from helpdesk_fetch.errors import REPEATED as REPEATED
