from engine.tools.cli import main

main()
