from tjump.cli import main

main()
