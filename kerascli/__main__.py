from kerascli.cli import main

main()
