from helpdesk_fetch.cli import main

main()
