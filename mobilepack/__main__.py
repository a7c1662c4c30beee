from mobilepack.cli.main import main

main()
