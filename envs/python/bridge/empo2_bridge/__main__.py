"""`python -m empo2_bridge <environment> [flags]`: see server.py."""

from .server import main

if __name__ == "__main__":
    main()
