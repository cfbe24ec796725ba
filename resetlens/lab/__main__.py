from resetlens.lab.cli import main

main()
