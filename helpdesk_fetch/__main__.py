"""The entry point: the ``helpdesk-fetch`` console script and ``python -m helpdesk_fetch``. The
command's start-up runs without the cyclic garbage collector (startup.py), and with the methods of
its dataclasses compiled once per installation (dataclass_code.py), so the command line is
imported only once both are in place."""

from helpdesk_fetch import dataclass_code
from helpdesk_fetch.startup import pause_gc


def main() -> None:
    pause_gc()
    dataclass_code.install()
    from helpdesk_fetch.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
