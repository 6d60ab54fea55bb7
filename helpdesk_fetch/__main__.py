"""The entry point: the ``helpdesk-fetch`` console script and ``python -m helpdesk_fetch``. The
command's start-up runs without the cyclic garbage collector (startup.py), so the command line is
imported only once it is paused."""

from helpdesk_fetch.startup import pause_gc


def main() -> None:
    pause_gc()
    from helpdesk_fetch.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
