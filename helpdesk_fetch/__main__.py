from helpdesk_fetch.startup import main

main()
