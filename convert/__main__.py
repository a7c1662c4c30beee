"""`python -m convert` is `mobilepack convert`: the same click command, not a copy."""

from mobilepack.cli.main import convert_main

if __name__ == "__main__":
    convert_main()
