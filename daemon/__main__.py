"""``python -m helpdeskd``: the same command line as the ``helpdeskd`` script."""

from helpdeskd.cli import main

if __name__ == "__main__":
    main()
