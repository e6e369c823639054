from attest.cli import main

main()
