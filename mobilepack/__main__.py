from mobilepack.cli import main

main()
