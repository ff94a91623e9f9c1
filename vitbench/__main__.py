"""`python -m vitbench` is the same as the `vitbench` console script."""

from vitbench.cli import main

if __name__ == "__main__":
    main()
