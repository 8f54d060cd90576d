from am_distill.cli.main import main

main()
