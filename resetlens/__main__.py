from resetlens.cli import main

main()
